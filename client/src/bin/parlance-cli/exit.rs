//! Exit codes: one per kind of failure, so a script can tell "try again later" from "fix the request".

use std::process::ExitCode;

use parlance_client::{ClientError, ErrorKind};

/// Shown at the end of `--help`; the README's table says the same.
pub const HELP: &str = "\
Exit codes:
  0  success
  1  a local problem: a file could not be read or written, an unusable address or token
  2  usage: the command line is wrong
  3  unreachable: nothing answered at --server, or the connection was lost
  4  refused: the server said no (HTTP 4xx or its socket codes: bad input, missing or wrong token, not allowed)
  5  server error: the server or its model provider failed (HTTP 5xx or its socket codes)
  130  stopped with Ctrl-C during `ask` or `talk` (the answer is stopped on the server too)

Environment: PARLANCE_SERVER and PARLANCE_TOKEN stand for --server and --token.";

pub const LOCAL: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
pub const REFUSED: u8 = 4;
pub const SERVER_ERROR: u8 = 5;
/// As shells report a command ended by Ctrl-C (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;

pub fn code(error: &ClientError) -> ExitCode {
    ExitCode::from(match error.kind() {
        ErrorKind::Local => LOCAL,
        ErrorKind::Unreachable => UNREACHABLE,
        ErrorKind::Refused => REFUSED,
        ErrorKind::ServerFailure => SERVER_ERROR,
    })
}
