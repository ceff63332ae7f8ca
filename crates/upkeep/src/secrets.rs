//! Keeping secrets out of sight: passwords in the command line are overwritten in the
//! process's memory, so that `ps` and `/proc/PID/cmdline` show `x`s (as the MySQL client
//! does); files that hold secrets and are readable by others are warned about.

use std::path::Path;

/// Overwrites the password of every `scheme://user:password@host` argument in this process's
/// argument memory with `x`s. Call it once the arguments have been copied (clap parses the
/// copy). Linux only; elsewhere, and where the kernel refuses to write `/proc/self/mem`, the
/// command line keeps the password, and `--password-file` is the way to hide it.
pub fn hide_passwords_in_argv() {
    #[cfg(target_os = "linux")]
    if let Err(e) = overwrite_passwords() {
        tracing::debug!("could not hide the password in the command line: {e}");
    }
}

#[cfg(target_os = "linux")]
fn overwrite_passwords() -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};

    let cmdline = std::fs::read("/proc/self/cmdline")?;
    let mut spans = Vec::new();
    let mut offset = 0u64;
    for arg in cmdline.split(|b| *b == 0) {
        if let Some(password) = std::str::from_utf8(arg)
            .ok()
            .and_then(upkeep_core::url_userinfo)
            .and_then(|info| info.password)
        {
            if !password.is_empty() {
                spans.push((offset + password.start as u64, password.len()));
            }
        }
        offset += arg.len() as u64 + 1;
    }
    if spans.is_empty() {
        return Ok(());
    }
    // Field 48 of /proc/self/stat is where the arguments start in memory (after the command
    // name, which may hold spaces: count from the last ')').
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let arg_start: u64 = fields
        .split_whitespace()
        .nth(45)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| std::io::Error::other("no arg_start in /proc/self/stat"))?;
    let mut mem = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/mem")?;
    for (at, len) in spans {
        mem.seek(SeekFrom::Start(arg_start + at))?;
        mem.write_all(&vec![b'x'; len])?;
    }
    Ok(())
}

/// Warns when a file that holds secrets (a password file, upkeep.toml) may be read by
/// group or others.
pub fn warn_if_readable_by_others(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "{what} {} is readable by group or others (mode {:o}): chmod 600 it",
                    path.display(),
                    mode & 0o777
                );
            }
        }
    }
}
