//! The inputs that `verify` and `doctor` share: the API keys, the account SID, the time and the
//! leeway.

use std::ffi::OsString;

use twilio_access_token::{Clock as _, DEFAULT_LEEWAY_SECS, SidKind, SystemClock, validate_sid};

use crate::cli::{CheckTimeArgs, KeyArgs};
use crate::credentials::{self, Env};
use crate::error::CliError;
use crate::input::Source;
use crate::keys::{self, Key};
use crate::time;

/// The inputs a token is checked against: the keys, the account, the time and the leeway.
pub(crate) struct CheckInputs {
    /// The API keys, in the order given.
    pub(crate) keys: Vec<Key>,
    /// The account SID the token must name in `sub`, validated.
    pub(crate) account_sid: Option<String>,
    /// The time of the check, in Unix seconds.
    pub(crate) now: u64,
    /// The clock leeway in seconds.
    pub(crate) leeway: u64,
}

/// Whether a check can run without an API secret and an account SID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// `verify`: at least one key and the account SID are required.
    KeysAndAccount,
    /// `doctor`: the checks that need them are skipped.
    Nothing,
}

/// Collects the keys, the account SID, the leeway and the time, in that order, before the token
/// is read.
///
/// # Errors
///
/// Returns [`CliError::Input`] when the token and the secret both come from stdin, when a
/// required input is missing or when `--leeway` is invalid, [`CliError::Sid`] for an invalid
/// SID, and the errors of [`keys::resolve`].
pub(crate) fn resolve(
    token: &str,
    account_sid: Option<&String>,
    key_args: &KeyArgs,
    time_args: &CheckTimeArgs,
    env: Env<'_>,
    needs: Needs,
) -> Result<CheckInputs, CliError> {
    check_one_stdin_reader(token, key_args.api_secret_file.as_ref())?;

    let account_sid = credentials::account_sid(account_sid, env)?;
    match &account_sid {
        Some(sid) => validate_sid(SidKind::Account, sid)?,
        None if needs == Needs::KeysAndAccount => return Err(credentials::missing_account_sid()),
        None => {}
    }

    let keys = keys::resolve(key_args, env, needs == Needs::KeysAndAccount)?;
    let leeway = match &time_args.leeway {
        Some(text) => time::parse_leeway(text).map_err(CliError::Input)?,
        None => DEFAULT_LEEWAY_SECS,
    };
    let now = match time_args.at {
        Some(at) => at,
        None => system_now()?,
    };

    Ok(CheckInputs {
        keys,
        account_sid,
        now,
        leeway,
    })
}

/// Rejects `-` for both the token and the secret, since stdin can be read only once.
fn check_one_stdin_reader(token: &str, secret_file: Option<&OsString>) -> Result<(), CliError> {
    let secret = Source::from_optional_arg(secret_file);
    if token == "-" && secret == Some(Source::Stdin) {
        return Err(CliError::Input(
            "the token and --api-secret-file cannot both read stdin: put the secret in a file or \
             in TWILIO_API_SECRET"
                .to_owned(),
        ));
    }
    Ok(())
}

fn system_now() -> Result<u64, CliError> {
    SystemClock.now().ok_or_else(|| {
        CliError::Input(
            "the system clock is set before 1970: fix the clock or pass --at".to_owned(),
        )
    })
}
