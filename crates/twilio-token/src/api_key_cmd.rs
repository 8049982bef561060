//! `twilio-token api-key generate` and `twilio-token api-key hash`: the bearer keys that
//! backends send to the server, which stores only their hashes.

use std::io::{self, Write as _};

use twilio_access_token::validate_identity;
use twilio_token_server::auth::api_key::{KEY_PREFIX, generate_key, hash_key};
use zeroize::Zeroizing;

use crate::cli::ApiKeyGenerateArgs;
use crate::config_cmd::toml_string;
use crate::error::CliError;
use crate::input::{Source, read_into};
use crate::output::{warn, write_stdout};

/// Generates a key, writes it to stdout and writes its `[[auth.api_keys]]` block to stderr.
///
/// # Errors
///
/// Returns [`CliError::Input`] for an empty name or pattern or an invalid identity, and
/// [`CliError::Write`] when stdout fails.
pub(crate) fn generate(args: &ApiKeyGenerateArgs) -> Result<(), CliError> {
    check_generate_args(args)?;

    let (key, hash) = generate_key();
    let key = Zeroizing::new(key);
    write_stdout(&key)?;
    write_stdout("\n")?;

    let block = config_block(args, &hash);
    // Nothing is left to report to if stderr itself fails.
    let _ = io::stderr().lock().write_all(block.as_bytes());
    Ok(())
}

/// Reads a key from stdin and returns its `sha256:` hash on one line.
///
/// # Errors
///
/// Returns [`CliError::Read`] when stdin cannot be read, and [`CliError::Input`] when it is
/// empty or not UTF-8.
pub(crate) fn hash() -> Result<String, CliError> {
    let mut bytes = Zeroizing::new(Vec::new());
    read_into(&Source::Stdin, "the API key", &mut bytes)?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Err(CliError::Input(
            "the API key from stdin is not UTF-8 text".to_owned(),
        ));
    };
    let key = text.trim();
    if key.is_empty() {
        return Err(CliError::Input(
            "no API key on stdin: pipe in the key that api-key generate printed".to_owned(),
        ));
    }
    if !key.starts_with(KEY_PREFIX) {
        warn(&format!(
            "the key does not start with {KEY_PREFIX}, so the server treats it as another kind \
             of bearer token and never checks it against this hash"
        ));
    }
    Ok(format!("{}\n", hash_key(key)))
}

fn check_generate_args(args: &ApiKeyGenerateArgs) -> Result<(), CliError> {
    if args.name.trim().is_empty() {
        return Err(CliError::Input(
            "--name is empty: name the caller, such as billing-backend".to_owned(),
        ));
    }
    if let Some(identity) = &args.identity {
        validate_identity(identity)
            .map_err(|error| CliError::Input(format!("--identity {identity:?}: {error}")))?;
    }
    if args.may_act_for.as_deref().is_some_and(str::is_empty) {
        return Err(CliError::Input(
            "--may-act-for is empty: give a pattern such as user-* or *".to_owned(),
        ));
    }
    Ok(())
}

/// Returns the `[[auth.api_keys]]` block for the key with `hash`, with a comment line before
/// it.
fn config_block(args: &ApiKeyGenerateArgs, hash: &str) -> String {
    let mut block = String::from(
        "# Add this block to the server's configuration file. The key itself is on stdout and is \
         not shown again.\n[[auth.api_keys]]\n",
    );
    block.push_str(&format!("name = {}\n", toml_string(&args.name)));
    block.push_str(&format!("hash = {}\n", toml_string(hash)));
    if let Some(identity) = &args.identity {
        block.push_str(&format!("identity = {}\n", toml_string(identity)));
    }
    if let Some(pattern) = &args.may_act_for {
        block.push_str(&format!("may_act_for = {}\n", toml_string(pattern)));
    }
    if !args.groups.is_empty() {
        let groups: Vec<String> = args.groups.iter().map(|group| toml_string(group)).collect();
        block.push_str(&format!("groups = [{}]\n", groups.join(", ")));
    }
    block
}
