//! Exit codes: the one place they are defined. README.md lists them; tests check them.

use upkeep_core::ErrorKind;

pub const OK: u8 = 0;
/// Anything else: a query failed, the connection was lost, a file could not be written.
pub const FAILURE: u8 = 1;
/// Bad arguments or URL (clap's own usage errors exit 2 as well).
pub const USAGE: u8 = 2;
/// The work was done and found a difference (digest mismatch, failed verification).
pub const MISMATCH: u8 = 3;
/// The server could not be reached or refused the credentials.
pub const CONNECT: u8 = 4;
/// A database, table or file does not exist.
pub const NOT_FOUND: u8 = 5;
/// A privilege is missing.
pub const PERMISSION: u8 = 6;
/// Interrupted (Ctrl-C, SIGTERM).
pub const INTERRUPTED: u8 = 130;

pub fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Usage => USAGE,
        ErrorKind::Connect => CONNECT,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Permission => PERMISSION,
        ErrorKind::Cancelled => INTERRUPTED,
        _ => FAILURE,
    }
}

/// The help text's table of exit codes.
pub const HELP: &str = "Exit codes:
  0    success
  1    failure (a query failed, the connection was lost, a file could not be written)
  2    usage error (bad arguments, unsupported URL)
  3    verification found a difference (digest mismatch)
  4    cannot connect (unreachable server, authentication failed)
  5    not found (database, table or file)
  6    permission denied
  130  interrupted";
