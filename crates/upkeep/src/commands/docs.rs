//! `upkeep completions SHELL` and `upkeep manpage`: generated from the command line's own
//! definition, so they never drift from it.

use clap::{Args, CommandFactory};

use crate::cli::{Cli, Failure};
use crate::exit;

/// Print a shell completion script.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  upkeep completions bash > /etc/bash_completion.d/upkeep
  upkeep completions zsh > \"${fpath[1]}/_upkeep\"
  upkeep completions fish > ~/.config/fish/completions/upkeep.fish")]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn completions(args: &CompletionsArgs) -> Result<u8, Failure> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "upkeep", &mut out);
    crate::printer::raw(&out)?;
    Ok(exit::OK)
}

/// Print the manual page (roff) of upkeep, or of one of its commands.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  upkeep manpage > /usr/local/share/man/man1/upkeep.1
  upkeep manpage backup > /usr/local/share/man/man1/upkeep-backup.1
  upkeep manpage restore | man -l -")]
pub struct ManpageArgs {
    /// A command (backup, restore…): its own page.
    pub command: Option<String>,
}

pub fn manpage(args: &ManpageArgs) -> Result<u8, Failure> {
    let cmd = Cli::command();
    let page = match &args.command {
        None => cmd,
        Some(name) => {
            let sub = cmd
                .find_subcommand(name)
                .ok_or_else(|| {
                    Failure::from((
                        exit::USAGE,
                        anyhow::anyhow!("no command {name:?}: see upkeep --help"),
                    ))
                })?
                .clone();
            // A page's title is its command's name: `upkeep-backup`.
            let full = format!("upkeep-{name}");
            sub.name(full.clone()).bin_name(full)
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    crate::printer::raw(&out)?;
    Ok(exit::OK)
}
