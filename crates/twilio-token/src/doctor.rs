//! `twilio-token doctor`: lists every problem in a token, with the Twilio error code and a fix
//! for each.

use std::fmt::Write as _;

use serde_json::{Value, json};
use twilio_access_token::{DiagnoseContext, Diagnosis, Finding, Severity, Verdict, diagnose};

use crate::check::{self, CheckInputs, Needs};
use crate::cli::DoctorArgs;
use crate::credentials::{self, Env};
use crate::error::CliError;
use crate::input;
use crate::output::{self, Outcome, escape_controls};

/// The severities in the order the text report lists them, with their headings.
const SECTIONS: [(Severity, &str); 3] = [
    (Severity::Error, "errors"),
    (Severity::Warning, "warnings"),
    (Severity::Note, "notes"),
];

/// Diagnoses the token that `args` name and returns the report to print.
///
/// # Errors
///
/// Returns a [`CliError`] for a missing or invalid input. A token with errors is not a
/// `CliError`: it gives an [`Outcome`] with `rejected` set.
pub(crate) fn run(args: &DoctorArgs) -> Result<Outcome, CliError> {
    doctor(args, &|name| std::env::var_os(name))
}

fn doctor(args: &DoctorArgs, env: Env<'_>) -> Result<Outcome, CliError> {
    let inputs = check::resolve(
        &args.token,
        args.account_sid.as_ref(),
        &args.keys,
        &args.time,
        env,
        Needs::Nothing,
    )?;
    if inputs.keys.is_empty() && credentials::auth_token_set(env) {
        output::warn(
            "TWILIO_AUTH_TOKEN is set but cannot check the signature: Access Tokens are signed \
             with an API key's secret, so set TWILIO_API_SECRET or pass --api-secret-file",
        );
    }

    let token = read_token(&args.token)?;
    let skipped_reason = skipped_reason(&inputs);
    let diagnosis = diagnose(&token, &context(inputs));

    let text = if args.json {
        render_json(&diagnosis)
    } else {
        render_text(&diagnosis, &skipped_reason)
    };
    Ok(Outcome {
        stdout: escape_controls(&text),
        rejected: diagnosis.verdict() == Verdict::Invalid,
        ..Outcome::default()
    })
}

/// Returns the token as given, so that `diagnose` can report whitespace around it. From stdin,
/// exactly one trailing newline is removed first, because shells and editors add one.
fn read_token(arg: &str) -> Result<String, CliError> {
    let mut token = input::read_token(arg)?;
    if arg == "-" {
        if token.ends_with("\r\n") {
            token.truncate(token.len() - 2);
        } else if token.ends_with('\n') {
            token.truncate(token.len() - 1);
        }
    }

    if token.is_empty() {
        return Err(CliError::Input(
            "the token is empty: pass it as the argument, or on stdin with -".to_owned(),
        ));
    }
    Ok(token)
}

fn context(inputs: CheckInputs) -> DiagnoseContext {
    let mut context = DiagnoseContext::new(inputs.now).leeway_secs(inputs.leeway);
    if let Some(account_sid) = inputs.account_sid {
        context = context.account_sid(account_sid);
    }
    for key in inputs.keys {
        context = context.key(key.sid, key.secret);
    }
    context
}

/// Names the missing inputs for the "not verified" verdict.
fn skipped_reason(inputs: &CheckInputs) -> String {
    match (inputs.keys.is_empty(), inputs.account_sid.is_none()) {
        (true, true) => "no secret or account SID given",
        (true, false) => "no secret given",
        (false, true) => "no account SID given",
        (false, false) => "some checks were skipped",
    }
    .to_owned()
}

/// Writes the findings by severity, the skipped checks and the verdict.
fn render_text(diagnosis: &Diagnosis, skipped_reason: &str) -> String {
    let mut out = String::new();
    for (severity, heading) in SECTIONS {
        let mut findings = diagnosis
            .findings
            .iter()
            .filter(|finding| finding.severity == severity)
            .peekable();
        if findings.peek().is_none() {
            continue;
        }
        let _ = writeln!(out, "{heading}:");
        for finding in findings {
            push_finding(&mut out, finding);
        }
        out.push('\n');
    }
    if diagnosis.findings.is_empty() {
        out.push_str("no problems found\n\n");
    }

    if !diagnosis.skipped.is_empty() {
        out.push_str("not checked:\n");
        for skipped in &diagnosis.skipped {
            let _ = writeln!(out, "  {skipped}");
        }
        out.push('\n');
    }

    let _ = writeln!(out, "verdict: {}", verdict_text(diagnosis, skipped_reason));
    out
}

/// Appends `  [check] message (Twilio error NNNNN)` and the fix on the next line.
fn push_finding(out: &mut String, finding: &Finding) {
    let _ = write!(out, "  [{}] {}", finding.check, finding.message);
    if let Some(code) = finding.twilio_code {
        let _ = write!(out, " (Twilio error {code})");
    }
    let _ = writeln!(out, "\n    fix: {}", finding.fix);
}

/// Returns `valid`, `not verified (no secret given)` or `invalid (2 errors, 1 warning)`.
fn verdict_text(diagnosis: &Diagnosis, skipped_reason: &str) -> String {
    let count = |severity| {
        diagnosis
            .findings
            .iter()
            .filter(|finding| finding.severity == severity)
            .count()
    };
    let errors = count(Severity::Error);
    let warnings = count(Severity::Warning);

    match diagnosis.verdict() {
        Verdict::Invalid => format!(
            "invalid ({}, {})",
            plural(errors, "error"),
            plural(warnings, "warning")
        ),
        Verdict::Unverified if warnings > 0 => format!(
            "not verified ({skipped_reason}; {})",
            plural(warnings, "warning")
        ),
        Verdict::Unverified => format!("not verified ({skipped_reason})"),
        Verdict::Valid if warnings > 0 => format!("valid ({})", plural(warnings, "warning")),
        Verdict::Valid => "valid".to_owned(),
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn render_json(diagnosis: &Diagnosis) -> String {
    let verdict = match diagnosis.verdict() {
        Verdict::Valid => "valid",
        Verdict::Unverified => "unverified",
        Verdict::Invalid => "invalid",
    };
    let findings: Vec<Value> = diagnosis
        .findings
        .iter()
        .map(|finding| {
            json!({
                "severity": finding.severity.to_string(),
                "check": finding.check,
                "twilio_code": finding.twilio_code,
                "message": finding.message,
                "fix": finding.fix,
            })
        })
        .collect();
    let document = json!({
        "verdict": verdict,
        "findings": findings,
        "skipped": diagnosis.skipped,
    });
    format!("{document:#}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_counts() {
        assert_eq!(plural(0, "error"), "0 errors");
        assert_eq!(plural(1, "error"), "1 error");
        assert_eq!(plural(2, "warning"), "2 warnings");
    }
}
