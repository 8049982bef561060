//! The `twilio-token` command line: mints Twilio Access Tokens and shows what a token contains.
//!
//! Results go to stdout and errors to stderr, once, as `error: <message>`. The exit status is 0
//! on success and 2 for a usage or input error. A closed stdout (a broken pipe) ends the program
//! quietly with status 0.

mod cli;
mod credentials;
mod decode;
mod error;
mod grants;
mod input;
mod mint;
mod output;
mod time;

use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();

    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error),
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let text = match cli.command {
        Command::Mint(args) => mint::run(&args)?,
        Command::Decode(args) => decode::run(&args)?,
    };
    output::write_stdout(&text)
}

/// Writes the error and its causes to stderr on one line and returns exit status 2.
fn report(error: &CliError) -> ExitCode {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }

    // Nothing is left to report to if stderr itself fails.
    let _ = writeln!(io::stderr().lock(), "error: {message}");
    ExitCode::from(error::EXIT_USAGE)
}
