//! The categories of failure that decide a command's exit code: every crate's errors map
//! into them (`kind()`), and the binary maps them to exit codes in one place.

/// What went wrong, in the categories that decide a command's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong (bad URL, unknown scheme, unsupported option).
    Usage,
    /// The server cannot be reached or refuses the credentials.
    Connect,
    /// A database, table or file named by the user does not exist.
    NotFound,
    /// The user lacks a privilege.
    Permission,
    /// Anything else: a query failed, the connection was lost, a value could not be read.
    Failure,
    Cancelled,
}
