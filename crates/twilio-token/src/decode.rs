//! `twilio-token decode`: shows a token's header and claims without checking its signature.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use twilio_access_token::dangerous::{UnverifiedToken, decode_unverified};
use twilio_access_token::{Clock as _, SystemClock};

use crate::cli::DecodeArgs;
use crate::error::CliError;
use crate::input;
use crate::output::escape_controls;
use crate::time;

/// The first line of the text output.
const NOT_CHECKED: &str = "the signature was NOT checked: nothing below proves who made this \
                           token or that it was not changed";

/// Claims shown in their own lines, in this order. Any other claims follow them.
const KNOWN_CLAIMS: [&str; 7] = ["jti", "iss", "sub", "grants", "iat", "nbf", "exp"];

/// Decodes the token that `args` name and returns the text to print.
///
/// # Errors
///
/// Returns the [`CliError::Decode`] naming the malformed part, or an error reading stdin.
pub(crate) fn run(args: &DecodeArgs) -> Result<String, CliError> {
    let text = input::read_token(&args.token)?;
    let token = decode_unverified(text.trim())?;

    let rendered = if args.json {
        render_json(&token)
    } else {
        let now = match args.now {
            Some(now) => now,
            None => system_now()?,
        };
        render_text(&token, now)
    };
    Ok(escape_controls(&rendered))
}

fn system_now() -> Result<u64, CliError> {
    SystemClock.now().ok_or_else(|| {
        CliError::Input(
            "the system clock is set before 1970: fix the clock or pass --now".to_owned(),
        )
    })
}

fn render_json(token: &UnverifiedToken) -> String {
    let document = json!({
        "signature_checked": false,
        "header": token.header,
        "claims": token.claims,
    });
    format!("{document:#}\n")
}

fn render_text(token: &UnverifiedToken, now: u64) -> String {
    let mut out = format!("{NOT_CHECKED}\n\nheader\n");
    for (key, value) in &token.header {
        push_line(&mut out, key, &display_value(value));
    }

    out.push_str("\nclaims\n");
    push_claims(&mut out, &token.claims, now);

    out.push_str("\ngrants\n");
    push_grants(&mut out, token.claims.get("grants"));
    out
}

fn push_claims(out: &mut String, claims: &Map<String, Value>, now: u64) {
    for name in ["jti", "iss", "sub"] {
        push_line(out, name, &claim_text(claims.get(name), "(missing)"));
    }
    let identity = claims
        .get("grants")
        .and_then(|grants| grants.get("identity"));
    push_line(out, "identity", &claim_text(identity, "(missing)"));

    push_line(out, "iat", &time_text(claims.get("iat"), now, "(missing)"));
    push_line(out, "nbf", &time_text(claims.get("nbf"), now, "(not set)"));
    push_line(out, "exp", &time_text(claims.get("exp"), now, "(missing)"));
    push_line(out, "lifetime", &lifetime_text(claims));
    push_line(out, "now", &now_text(claims, now));

    for (key, value) in claims {
        if !KNOWN_CLAIMS.contains(&key.as_str()) {
            push_line(out, key, &display_value(value));
        }
    }
}

fn push_grants(out: &mut String, grants: Option<&Value>) {
    let grants = match grants {
        Some(Value::Object(grants)) => grants,
        Some(other) => {
            let _ = writeln!(out, "  (not an object) {other}");
            return;
        }
        None => {
            out.push_str("  (missing)\n");
            return;
        }
    };

    let mut any = false;
    for (key, value) in grants.iter().filter(|(key, _)| *key != "identity") {
        any = true;
        let _ = writeln!(out, "  {key}");
        for line in format!("{value:#}").lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    if !any {
        out.push_str("  (none)\n");
    }
}

/// Appends `  label    value`, with the values of one section aligned.
fn push_line(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "  {label:<9} {value}");
}

fn claim_text(value: Option<&Value>, absent: &str) -> String {
    value.map_or_else(|| absent.to_owned(), display_value)
}

/// Shows a plain string as it is and anything else, or a string that would break the layout,
/// as JSON.
fn display_value(value: &Value) -> String {
    match value {
        Value::String(text) if !text.is_empty() && !text.chars().any(char::is_control) => {
            text.clone()
        }
        other => other.to_string(),
    }
}

/// Shows a time claim as Unix seconds, UTC time and the distance from `now`.
fn time_text(value: Option<&Value>, now: u64, absent: &str) -> String {
    let Some(value) = value else {
        return absent.to_owned();
    };
    let Some(secs) = value.as_u64() else {
        return format!("{value}  (not a Unix time in whole seconds)");
    };
    let utc = time::rfc3339(secs).unwrap_or_else(|| "after the year 9999".to_owned());
    format!("{secs}  {utc}  ({})", time::relative(secs, now))
}

/// Returns the start of the lifetime: `nbf` when it is set, otherwise `iat`, with its name.
fn lifetime_start(claims: &Map<String, Value>) -> Option<(&'static str, u64)> {
    match claims.get("nbf") {
        Some(nbf) => nbf.as_u64().map(|nbf| ("nbf", nbf)),
        None => claims.get("iat")?.as_u64().map(|iat| ("iat", iat)),
    }
}

fn lifetime_text(claims: &Map<String, Value>) -> String {
    let exp = claims.get("exp").and_then(Value::as_u64);
    let (Some((start_name, start)), Some(exp)) = (lifetime_start(claims), exp) else {
        return "unknown: exp and nbf or iat must be Unix times".to_owned();
    };
    if exp < start {
        return format!("none: exp is before {start_name}");
    }
    let secs = exp - start;
    format!("{secs}s ({}), from {start_name} to exp", time::span(secs))
}

/// Shows `now` and where it falls: before the lifetime, inside it, or after `exp`.
fn now_text(claims: &Map<String, Value>, now: u64) -> String {
    let utc = time::rfc3339(now).unwrap_or_else(|| "after the year 9999".to_owned());
    let exp = claims.get("exp").and_then(Value::as_u64);
    let start = lifetime_start(claims);

    let position = match (start, exp) {
        (_, Some(exp)) if now >= exp => "after exp: expired",
        (Some((name, start)), _) if now < start => {
            if name == "nbf" {
                "before nbf: not usable yet"
            } else {
                "before iat"
            }
        }
        (Some(_), Some(_)) => "inside the lifetime",
        _ => "lifetime unknown",
    };
    format!("{now}  {utc}  {position}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn lifetime_starts_at_nbf_when_set() {
        let with_nbf = claims(json!({"iat": 100, "nbf": 40, "exp": 160}));
        assert_eq!(lifetime_text(&with_nbf), "120s (2m), from nbf to exp");
        let without_nbf = claims(json!({"iat": 100, "exp": 3700}));
        assert_eq!(lifetime_text(&without_nbf), "3600s (1h), from iat to exp");
    }

    #[test]
    fn lifetime_unusable_claims_named() {
        let reversed = claims(json!({"iat": 100, "exp": 50}));
        assert_eq!(lifetime_text(&reversed), "none: exp is before iat");
        let text_exp = claims(json!({"iat": 100, "exp": "later"}));
        assert_eq!(
            lifetime_text(&text_exp),
            "unknown: exp and nbf or iat must be Unix times"
        );
    }

    #[test]
    fn now_position_at_boundaries() {
        let window = claims(json!({"iat": 100, "nbf": 150, "exp": 200}));
        assert!(now_text(&window, 149).ends_with("before nbf: not usable yet"));
        assert!(now_text(&window, 150).ends_with("inside the lifetime"));
        assert!(now_text(&window, 199).ends_with("inside the lifetime"));
        assert!(now_text(&window, 200).ends_with("after exp: expired"));
    }

    #[test]
    fn time_text_non_integer_shown_raw() {
        assert_eq!(
            time_text(Some(&json!(1.5)), 0, "(missing)"),
            "1.5  (not a Unix time in whole seconds)"
        );
        assert_eq!(time_text(None, 0, "(not set)"), "(not set)");
    }

    #[test]
    fn display_value_quotes_awkward_strings() {
        assert_eq!(display_value(&json!("alice")), "alice");
        assert_eq!(display_value(&json!("")), "\"\"");
        assert_eq!(display_value(&json!("a\nb")), "\"a\\nb\"");
        assert_eq!(display_value(&json!(7)), "7");
    }
}
