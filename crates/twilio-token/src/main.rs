//! The `twilio-token` command line: mints, verifies and diagnoses Twilio Access Tokens, shows
//! what a token contains, and runs the token server.
//!
//! Results go to stdout and errors to stderr, once, as `error: <message>`. The exit status is 0
//! on success, 1 when `verify` or `doctor` rejects the token, and 2 for a usage or input error.
//! A closed stdout (a broken pipe) ends the program quietly with the status it would have had.

mod api_key_cmd;
mod audit_cmd;
mod check;
mod cli;
mod config_cmd;
mod credentials;
mod decode;
mod doctor;
mod error;
mod grants;
mod input;
mod keys;
mod mint;
mod output;
mod plain_log;
mod revoke;
mod serve;
mod time;
mod users;
mod verify;

use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{ApiKeyCommand, Cli, Command, ConfigCommand};
use crate::error::CliError;
use crate::output::Outcome;

/// mimalloc instead of the system allocator: the token server allocates for every request,
/// and with glibc's malloc that cost about 8% of its throughput in the load benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();

    match run(cli) {
        Ok(status) => ExitCode::from(status),
        Err(error) => report(&error),
    }
}

/// Runs the command and returns its exit status.
fn run(cli: Cli) -> Result<u8, CliError> {
    let outcome = match cli.command {
        Command::Mint(args) => Outcome::success(mint::run(&args)?),
        Command::Verify(args) => verify::run(&args)?,
        Command::Doctor(args) => doctor::run(&args)?,
        Command::Decode(args) => Outcome::success(decode::run(&args)?),
        Command::Serve(args) => {
            serve::run(&args)?;
            Outcome::default()
        }
        Command::Config(ConfigCommand::Check(args)) => Outcome::success(config_cmd::check(&args)?),
        Command::ApiKey(ApiKeyCommand::Generate(args)) => {
            api_key_cmd::generate(&args)?;
            Outcome::default()
        }
        Command::ApiKey(ApiKeyCommand::Hash) => Outcome::success(api_key_cmd::hash()?),
        Command::Users(args) => users::run(&args)?,
        Command::Audit(args) => Outcome::success(audit_cmd::run(&args, unix_now())?),
        Command::Revoke(args) => revoke::run(&args)?,
    };
    outcome.emit()
}

/// Returns the system clock's Unix time, or 0 before 1970.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
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
