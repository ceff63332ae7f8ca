//! Integration tests of the `upkeep` binary: what a user or a cron job sees.

mod backup;
mod cli;
mod generate;
mod locks;
mod memory;

use std::process::{Command, Output};

pub(crate) fn upkeep(args: &[&str]) -> Output {
    upkeep_env(args, &[])
}

pub(crate) fn upkeep_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upkeep"));
    cmd.args(args)
        .env_remove("UPKEEP_PASSWORD")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the upkeep binary runs")
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
