//! `twilio-token verify`: checks a token as Twilio does and prints a summary or the reason it
//! was rejected.

use serde_json::{Map, Value, json};
use twilio_access_token::{Claims, Verifier, VerifyError};

use crate::check::{self, CheckInputs, Needs};
use crate::cli::VerifyArgs;
use crate::credentials::Env;
use crate::error::CliError;
use crate::input;
use crate::output::{Outcome, escape_controls};
use crate::time;

/// Verifies the token that `args` name and returns what to print.
///
/// # Errors
///
/// Returns a [`CliError`] for a missing or invalid input. A rejected token is not an error: it
/// gives an [`Outcome`] with `rejected` set.
pub(crate) fn run(args: &VerifyArgs) -> Result<Outcome, CliError> {
    verify(args, &|name| std::env::var_os(name))
}

fn verify(args: &VerifyArgs, env: Env<'_>) -> Result<Outcome, CliError> {
    let inputs = check::resolve(
        &args.token,
        args.account_sid.as_ref(),
        &args.keys,
        &args.time,
        env,
        Needs::KeysAndAccount,
    )?;
    let verifier = build_verifier(&inputs)?;

    let text = input::read_token(&args.token)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::Input(
            "the token is empty: pass it as the argument, or on stdin with -".to_owned(),
        ));
    }

    let outcome = match verifier.verify_at(token, inputs.now) {
        Ok(claims) if args.json => Outcome::success(render_json(&claims)),
        Ok(claims) => Outcome::success(render_summary(&claims, inputs.now, inputs.leeway)),
        Err(error) if args.json => Outcome {
            stdout: render_error_json(&error),
            rejected: true,
            ..Outcome::default()
        },
        Err(error) => Outcome {
            stderr: format!("invalid: {error} (Twilio error {})\n", error.twilio_code()),
            rejected: true,
            ..Outcome::default()
        },
    };
    Ok(Outcome {
        stdout: escape_controls(&outcome.stdout),
        stderr: escape_controls(&outcome.stderr),
        rejected: outcome.rejected,
    })
}

/// Builds the verifier. `check::resolve` has already required the account SID, and without one
/// the builder returns its own error.
fn build_verifier(inputs: &CheckInputs) -> Result<Verifier, CliError> {
    let account_sid = inputs.account_sid.clone().unwrap_or_default();
    let mut builder = Verifier::builder(account_sid).leeway_secs(inputs.leeway);
    for key in &inputs.keys {
        builder = builder.key(key.sid.as_str(), key.secret.clone());
    }
    Ok(builder.build()?)
}

/// Writes the one-line summary of a valid token, such as `valid: identity "alice", grants
/// chat; expires 2023-11-14T23:13:20Z (in 59m 10s); signed by SK…`.
fn render_summary(claims: &Claims, now: u64, leeway: u64) -> String {
    let mut grants: Vec<String> = claims
        .grants
        .iter()
        .map(|grant| grant.key().to_owned())
        .collect();
    grants.extend(
        claims
            .unknown_grants
            .keys()
            .map(|key| format!("{key} (unknown)")),
    );
    let grants = if grants.is_empty() {
        "no grants".to_owned()
    } else {
        format!("grants {}", grants.join(", "))
    };

    let mut times = expiry_text(claims.expires_at, now, leeway);
    if let Some(nbf) = claims.not_before.filter(|nbf| *nbf > now) {
        times.push_str(&format!(
            "; not before {} ({}, accepted within the {leeway}s leeway)",
            utc(nbf),
            time::relative(nbf, now)
        ));
    }
    let region = match &claims.region {
        Some(region) => format!("; region {region}"),
        None => String::new(),
    };

    format!(
        "valid: identity {:?}, {grants}; {times}{region}; signed by {}\n",
        claims.identity, claims.api_key_sid
    )
}

/// Describes `exp`: `expires <time> (in 59m 10s)`, or `expired <time> (30s ago, accepted within
/// the 60s leeway)`.
fn expiry_text(exp: u64, now: u64, leeway: u64) -> String {
    if exp >= now {
        format!("expires {} ({})", utc(exp), time::relative(exp, now))
    } else {
        format!(
            "expired {} ({}, accepted within the {leeway}s leeway)",
            utc(exp),
            time::relative(exp, now)
        )
    }
}

fn utc(secs: u64) -> String {
    time::rfc3339(secs).unwrap_or_else(|| "after the year 9999".to_owned())
}

fn render_json(claims: &Claims) -> String {
    let grants: Map<String, Value> = claims
        .grants
        .iter()
        .map(|grant| (grant.key().to_owned(), grant.to_json()))
        .collect();
    let document = json!({
        "valid": true,
        "identity": claims.identity,
        "grants": grants,
        "unknown_grants": claims.unknown_grants,
        "iat": claims.issued_at,
        "nbf": claims.not_before,
        "exp": claims.expires_at,
        "iss": claims.api_key_sid,
        "sub": claims.account_sid,
        "jti": claims.jti,
        "region": claims.region,
    });
    format!("{document:#}\n")
}

fn render_error_json(error: &VerifyError) -> String {
    let document = json!({
        "valid": false,
        "error": {
            "twilio_code": error.twilio_code(),
            "kind": error.kind(),
            "message": error.to_string(),
        },
    });
    format!("{document:#}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_text_inside_and_within_leeway() {
        assert_eq!(
            expiry_text(1_700_003_600, 1_700_000_000, 60),
            "expires 2023-11-14T23:13:20Z (in 1h)"
        );
        assert_eq!(
            expiry_text(1_700_003_600, 1_700_003_600, 60),
            "expires 2023-11-14T23:13:20Z (now)"
        );
        assert_eq!(
            expiry_text(1_700_003_600, 1_700_003_630, 60),
            "expired 2023-11-14T23:13:20Z (30s ago, accepted within the 60s leeway)"
        );
    }
}
