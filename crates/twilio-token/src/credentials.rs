//! The account SID, API key SID and API secret, from flags, the environment or a file.

use std::ffi::OsString;

use twilio_access_token::ApiSecret;
use zeroize::Zeroizing;

use crate::cli::MintArgs;
use crate::error::CliError;
use crate::input::{self, Source, strip_one_newline};

/// Looks up an environment variable. The program passes `std::env::var_os`, and tests pass a
/// table.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The values that sign a token. `Debug` is not derived, so the secret cannot be printed.
pub(crate) struct Credentials {
    pub(crate) account_sid: String,
    pub(crate) api_key_sid: String,
    pub(crate) api_secret: ApiSecret,
}

/// Collects the credentials: each flag first, then its environment variables.
///
/// The API secret comes from `--api-secret-file` or, without it, from `TWILIO_API_SECRET` or
/// `TWILIO_API_KEY_SECRET`.
///
/// # Errors
///
/// Returns [`CliError::Input`] naming the flag and the variables when a value is missing, when
/// two variables for one value disagree, or when a variable is not UTF-8, and the errors of
/// reading the secret file.
pub(crate) fn resolve(args: &MintArgs, env: Env<'_>) -> Result<Credentials, CliError> {
    let account_sid =
        account_sid(args.account_sid.as_ref(), env)?.ok_or_else(missing_account_sid)?;
    let api_key_sid =
        api_key_sid(args.api_key_sid.as_ref(), env)?.ok_or_else(missing_api_key_sid)?;
    let api_secret =
        api_secret(args.api_secret_file.as_ref(), env)?.ok_or_else(|| missing_api_secret(env))?;

    Ok(Credentials {
        account_sid,
        api_key_sid,
        api_secret,
    })
}

/// Returns `--account-sid`, or `TWILIO_ACCOUNT_SID` without it.
///
/// # Errors
///
/// Returns [`CliError::Input`] when the variable is not UTF-8.
pub(crate) fn account_sid(flag: Option<&String>, env: Env<'_>) -> Result<Option<String>, CliError> {
    match flag {
        Some(sid) => Ok(Some(sid.clone())),
        None => env_value(env, "TWILIO_ACCOUNT_SID"),
    }
}

/// Returns `--api-key-sid`, or `TWILIO_API_KEY` or `TWILIO_API_KEY_SID` without it.
///
/// # Errors
///
/// Returns [`CliError::Input`] when a variable is not UTF-8 or the two variables differ.
pub(crate) fn api_key_sid(flag: Option<&String>, env: Env<'_>) -> Result<Option<String>, CliError> {
    match flag {
        Some(sid) => Ok(Some(sid.clone())),
        None => env_either(env, "TWILIO_API_KEY", "TWILIO_API_KEY_SID"),
    }
}

/// Returns the secret from `secret_file`, or from `TWILIO_API_SECRET` or `TWILIO_API_KEY_SECRET`
/// without it, or `None` when neither gives one.
///
/// # Errors
///
/// Returns the errors of reading the file, and [`CliError::Input`] when a variable is not UTF-8
/// or the two variables differ.
pub(crate) fn api_secret(
    secret_file: Option<&OsString>,
    env: Env<'_>,
) -> Result<Option<ApiSecret>, CliError> {
    match Source::from_optional_arg(secret_file) {
        Some(source) => read_secret(&source).map(Some),
        None => {
            Ok(env_either(env, "TWILIO_API_SECRET", "TWILIO_API_KEY_SECRET")?.map(ApiSecret::new))
        }
    }
}

/// Returns true when `TWILIO_AUTH_TOKEN` is set, which suggests that the user took the Auth
/// Token for the secret that signs Access Tokens. Only presence counts, so the value is never
/// read as text.
pub(crate) fn auth_token_set(env: Env<'_>) -> bool {
    env("TWILIO_AUTH_TOKEN").is_some_and(|value| !value.is_empty())
}

/// Returns the error for a missing API secret, which explains the Auth Token when that is set.
pub(crate) fn missing_api_secret(env: Env<'_>) -> CliError {
    if auth_token_set(env) {
        auth_token_instead()
    } else {
        no_api_secret()
    }
}

/// Returns a variable's value, treating an empty variable as unset.
///
/// # Errors
///
/// Returns [`CliError::Input`] when the value is not UTF-8. The message leaves the value out,
/// because it may be a secret.
pub(crate) fn env_value(env: Env<'_>, name: &str) -> Result<Option<String>, CliError> {
    let Some(value) = env(name).filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    value
        .into_string()
        .map(Some)
        .map_err(|_| CliError::Input(format!("{name} is not valid UTF-8 text")))
}

/// Returns the value of whichever of two variables for the same thing is set.
fn env_either(env: Env<'_>, first: &str, second: &str) -> Result<Option<String>, CliError> {
    let first_value = env_value(env, first)?;
    let second_value = env_value(env, second)?;
    match (first_value, second_value) {
        (Some(a), Some(b)) if a != b => Err(CliError::Input(format!(
            "{first} and {second} are set to different values: unset one of them"
        ))),
        (Some(value), _) | (None, Some(value)) => Ok(Some(value)),
        (None, None) => Ok(None),
    }
}

/// Reads the secret from a file or stdin and removes one trailing `\n` or `\r\n`.
fn read_secret(source: &Source) -> Result<ApiSecret, CliError> {
    let mut bytes = Zeroizing::new(Vec::new());
    input::read_into(source, "the API secret", &mut bytes)?;
    strip_one_newline(&mut bytes);

    // The String takes over the buffer, so no copy of the secret is left behind.
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(secret) => Ok(ApiSecret::new(secret)),
        Err(error) => {
            drop(Zeroizing::new(error.into_bytes()));
            Err(CliError::Input(format!(
                "the API secret from {source} is not UTF-8 text"
            )))
        }
    }
}

pub(crate) fn missing_account_sid() -> CliError {
    CliError::Input(
        "the account SID is missing: pass --account-sid or set TWILIO_ACCOUNT_SID to your \
         account's SID (AC…) from the Twilio Console"
            .to_owned(),
    )
}

pub(crate) fn missing_api_key_sid() -> CliError {
    CliError::Input(
        "the API key SID is missing: pass --api-key-sid or set TWILIO_API_KEY (or \
         TWILIO_API_KEY_SID) to the SID (SK…) of an API key from the Twilio Console"
            .to_owned(),
    )
}

fn no_api_secret() -> CliError {
    CliError::Input(
        "the API secret is missing: set TWILIO_API_SECRET (or TWILIO_API_KEY_SECRET) or pass \
         --api-secret-file with the secret shown once when the API key was created"
            .to_owned(),
    )
}

fn auth_token_instead() -> CliError {
    CliError::Input(
        "the API secret is missing, and TWILIO_AUTH_TOKEN cannot replace it: Access Tokens are \
         signed with an API key and its secret, not the Auth Token, so create an API key \
         (Twilio Console > Account > API keys & tokens > Create API key, or \
         `twilio api:core:keys:create`) and set TWILIO_API_SECRET or pass --api-secret-file"
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| OsString::from(value))
        }
    }

    #[test]
    fn env_value_empty_is_unset() {
        let env = table(&[("A", "")]);
        assert_eq!(env_value(&env, "A").ok(), Some(None));
    }

    #[test]
    fn env_either_same_values_accepted() {
        let env = table(&[("A", "x"), ("B", "x")]);
        assert_eq!(env_either(&env, "A", "B").ok(), Some(Some("x".to_owned())));
        let env = table(&[("B", "y")]);
        assert_eq!(env_either(&env, "A", "B").ok(), Some(Some("y".to_owned())));
    }

    #[test]
    fn env_either_different_values_rejected() {
        let env = table(&[("A", "x"), ("B", "y")]);
        let error = env_either(&env, "A", "B").expect_err("values differ");
        assert_eq!(
            error.to_string(),
            "A and B are set to different values: unset one of them"
        );
    }

    #[test]
    fn missing_secret_auth_token_named() {
        let env = table(&[("TWILIO_AUTH_TOKEN", "t")]);
        let error = missing_api_secret(&env);
        assert_eq!(error.to_string(), auth_token_instead().to_string());
        let error = missing_api_secret(&table(&[("TWILIO_AUTH_TOKEN", "")]));
        assert_eq!(error.to_string(), no_api_secret().to_string());
    }
}
