//! The API keys that `verify` and `doctor` check signatures with: one from the flags or the
//! environment, and any number from `--key-file`.

use std::path::Path;

use twilio_access_token::{ApiSecret, SidKind, VerifierError, validate_sid};
use zeroize::Zeroizing;

use crate::cli::KeyArgs;
use crate::credentials::{self, Env};
use crate::error::CliError;
use crate::input::{self, Source};
use crate::output;

/// An API key SID and its secret. `Debug` is not derived, so the secret cannot be printed.
pub(crate) struct Key {
    pub(crate) sid: String,
    pub(crate) secret: ApiSecret,
}

/// A key read from line `line` (counted from 1) of the key file.
struct FileKey {
    key: Key,
    line: usize,
}

/// Collects the API keys: the one from `--api-key-sid` and its secret first, then those of the
/// key file in file order.
///
/// A key SID without a secret is accepted when the key file has that key. With
/// `secret_required`, at least one key must result. Without it (for `doctor`) a key SID alone
/// adds no key, and the signature check is skipped.
///
/// # Errors
///
/// Returns [`CliError::Input`] when a SID or secret is missing, when a key is given twice with
/// different secrets, or when the key file is malformed. Returns [`CliError::Sid`] for an invalid
/// `--api-key-sid`, and the errors of reading the secret or the key file.
pub(crate) fn resolve(
    args: &KeyArgs,
    env: Env<'_>,
    secret_required: bool,
) -> Result<Vec<Key>, CliError> {
    let sid = credentials::api_key_sid(args.api_key_sid.as_ref(), env)?;
    if let Some(sid) = &sid {
        validate_sid(SidKind::ApiKey, sid)?;
    }
    let secret = credentials::api_secret(args.api_secret_file.as_ref(), env)?;
    let file_keys = match &args.key_file {
        Some(path) => read_key_file(path)?,
        None => Vec::new(),
    };

    let mut keys = Vec::new();
    match (sid, secret) {
        (Some(sid), Some(secret)) => {
            if secret.is_empty() {
                return Err(VerifierError::EmptySecret { sid }.into());
            }
            if !in_file_with_same_secret(&sid, &secret, &file_keys, args)? {
                keys.push(Key { sid, secret });
            }
        }
        (None, Some(_)) => return Err(credentials::missing_api_key_sid()),
        (Some(sid), None) => {
            let in_file = file_keys.iter().any(|entry| entry.key.sid == sid);
            if secret_required && !in_file {
                return Err(credentials::missing_api_secret(env));
            }
        }
        (None, None) => {}
    }
    keys.extend(file_keys.into_iter().map(|entry| entry.key));

    if secret_required && keys.is_empty() {
        return Err(no_keys(env));
    }
    Ok(keys)
}

/// Returns true when the key file has the key from the flags with the same secret, so that it
/// is counted once.
///
/// # Errors
///
/// Returns [`CliError::Input`] when the key file has the key with another secret.
fn in_file_with_same_secret(
    sid: &str,
    secret: &ApiSecret,
    file_keys: &[FileKey],
    args: &KeyArgs,
) -> Result<bool, CliError> {
    let Some(entry) = file_keys.iter().find(|entry| entry.key.sid == sid) else {
        return Ok(false);
    };
    if entry.key.secret.expose_secret() == secret.expose_secret() {
        return Ok(true);
    }
    let secret_origin = if args.api_secret_file.is_some() {
        "--api-secret-file"
    } else {
        "the environment"
    };
    Err(CliError::Input(format!(
        "the API key {sid} has one secret from {secret_origin} and another on line {} of {}: \
         remove the wrong one",
        entry.line,
        key_file_name(args)
    )))
}

/// Names the key file as `the key file "PATH"`.
fn key_file_name(args: &KeyArgs) -> String {
    let path = args.key_file.as_deref().unwrap_or(Path::new(""));
    format!("the key file {:?}", path.display().to_string())
}

/// Reads and parses the key file, after warning when other users may access it.
fn read_key_file(path: &Path) -> Result<Vec<FileKey>, CliError> {
    let source = Source::File(path.to_path_buf());
    let mut bytes = Zeroizing::new(Vec::new());
    input::read_into(&source, "the API keys", &mut bytes)?;
    warn_if_shared(path);

    let name = format!("the key file {:?}", path.display().to_string());
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Err(CliError::Input(format!("{name} is not UTF-8 text")));
    };
    let keys = parse_key_file(text, &name)?;
    if keys.is_empty() {
        return Err(CliError::Input(format!(
            "{name} contains no API key: write one key per line as SK…=SECRET"
        )));
    }
    Ok(keys)
}

/// Parses the lines of a key file. `name` names the file in errors.
///
/// No error repeats a line's text, because a malformed line may be a secret.
fn parse_key_file(text: &str, name: &str) -> Result<Vec<FileKey>, CliError> {
    let mut keys: Vec<FileKey> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }

        let key = parse_key_line(trimmed)
            .map_err(|problem| CliError::Input(format!("line {line} of {name} {problem}")))?;
        if let Some(first) = keys.iter().find(|entry| entry.key.sid == key.sid) {
            return Err(CliError::Input(format!(
                "the API key {} is on lines {} and {line} of {name}: give each key once",
                key.sid, first.line
            )));
        }
        keys.push(FileKey { key, line });
    }
    Ok(keys)
}

/// Splits a trimmed line into the SID and the secret. The SID ends at the first `=` or
/// whitespace, and the secret is the rest after that separator.
///
/// # Errors
///
/// Returns the problem, worded to follow "line N of the key file …".
fn parse_key_line(line: &str) -> Result<Key, &'static str> {
    const NOT_A_KEY: &str = "is not an API key: write each key as SK…=SECRET or SK… SECRET (a \
                             file holding only a secret goes to --api-secret-file)";

    let end = line
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(line.len());
    let sid = &line[..end];
    if validate_sid(SidKind::ApiKey, sid).is_err() {
        return Err(NOT_A_KEY);
    }

    let rest = line[end..].trim_start();
    let secret = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    if secret.is_empty() {
        return Err("has no secret after the API key SID");
    }
    Ok(Key {
        sid: sid.to_owned(),
        secret: ApiSecret::new(secret),
    })
}

/// Warns on stderr when the key file's mode lets other users read or write it.
#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;

    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        output::warn(&format!(
            "the key file {:?} can be accessed by other users (mode {mode:04o}): restrict it \
             with chmod 600",
            path.display().to_string()
        ));
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

/// Returns the error for a check that needs a key when none was given.
fn no_keys(env: Env<'_>) -> CliError {
    if credentials::auth_token_set(env) {
        return credentials::missing_api_secret(env);
    }
    CliError::Input(
        "no API key was given: pass --api-key-sid (or set TWILIO_API_KEY) with the secret in \
         TWILIO_API_SECRET or --api-secret-file, or list keys in --key-file"
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "the key file \"keys.txt\"";
    const SID_1: &str = "SKfedcba9876543210fedcba9876543210";
    const SID_2: &str = "SK00000000000000000000000000000002";

    fn parsed(text: &str) -> Vec<(String, Vec<u8>, usize)> {
        parse_key_file(text, NAME)
            .unwrap_or_else(|error| panic!("{error}"))
            .into_iter()
            .map(|entry| {
                let secret = entry.key.secret.expose_secret().to_vec();
                (entry.key.sid, secret, entry.line)
            })
            .collect()
    }

    fn error(text: &str) -> String {
        match parse_key_file(text, NAME) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn key_file_both_separators() {
        let text = format!("# keys\n\n{SID_1}=first\r\n  {SID_2} \t second secret  \n");
        assert_eq!(
            parsed(&text),
            [
                (SID_1.to_owned(), b"first".to_vec(), 3),
                (SID_2.to_owned(), b"second secret".to_vec(), 4),
            ]
        );
    }

    #[test]
    fn key_file_separator_spacing() {
        assert_eq!(parsed(&format!("{SID_1} = a=b"))[0].1, b"a=b");
        assert_eq!(parsed(&format!("{SID_1}==x"))[0].1, b"=x");
    }

    #[test]
    fn key_file_line_without_sid_not_echoed() {
        let message = error("FAKEsecretDoNotUse0123456789abcd\n");
        assert_eq!(
            message,
            "line 1 of the key file \"keys.txt\" is not an API key: write each key as SK…=SECRET \
             or SK… SECRET (a file holding only a secret goes to --api-secret-file)"
        );
        let message = error("# x\nSKnot-hex=FAKEsecret\n");
        assert!(message.starts_with("line 2 of"), "{message}");
        assert!(!message.contains("FAKE"), "{message}");
        assert!(!message.contains("SKnot"), "{message}");
    }

    #[test]
    fn key_file_empty_secret_rejected() {
        assert_eq!(
            error(&format!("{SID_1}=\n")),
            "line 1 of the key file \"keys.txt\" has no secret after the API key SID"
        );
        assert_eq!(
            error(SID_1),
            "line 1 of the key file \"keys.txt\" has no secret after the API key SID"
        );
    }

    #[test]
    fn key_file_repeated_sid_rejected() {
        let text = format!("{SID_1}=a\n{SID_2}=b\n{SID_1}=c\n");
        assert_eq!(
            error(&text),
            format!("the API key {SID_1} is on lines 1 and 3 of {NAME}: give each key once")
        );
    }
}
