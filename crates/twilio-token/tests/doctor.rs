//! `twilio-token doctor`: verdicts and exit status, whitespace around the token, checks skipped
//! without a secret or account, `--json`, and usage errors.

mod common;

use serde_json::{Value, json};

use common::{
    ACCOUNT_SID, API_KEY_SID, ISSUED_AT, SECOND_KEY_SID, SECOND_SECRET, SECRET, check, claims,
    header, key_file, run, sign, token, twilio_token,
};

/// The time of every check: ten minutes after [`ISSUED_AT`].
const NOW: &str = "1700000600";

fn doctor(args: &[&str]) -> (i32, String, String) {
    run(check("doctor").args(["--at", NOW]).args(args))
}

#[test]
fn doctor_valid_token_no_problems() {
    let (status, out, err) = doctor(&[&token(&claims())]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(out, "no problems found\n\nverdict: valid\n");
    assert_eq!(err, "");
}

#[test]
fn doctor_expired_token_exit_1() {
    let mut claims = claims();
    claims["exp"] = json!(ISSUED_AT + 60);
    let (status, out, _) = doctor(&[&token(&claims)]);
    assert_eq!(status, 1);
    assert!(
        out.starts_with("errors:\n  [claims.expired] the token expired 9m ago"),
        "{out}"
    );
    assert!(
        out.ends_with("\nverdict: invalid (1 error, 0 warnings)\n"),
        "{out}"
    );
}

#[test]
fn doctor_warnings_only_exit_0() {
    let mut claims = claims();
    claims["grants"] = json!({"identity": "alice"});
    let (status, out, _) = doctor(&[&token(&claims)]);
    assert_eq!(status, 0);
    assert!(out.starts_with("warnings:\n  [grants.empty] "), "{out}");
    assert!(out.ends_with("\nverdict: valid (1 warning)\n"), "{out}");
}

#[test]
fn doctor_malformed_token_exit_1() {
    let (status, out, err) = doctor(&["not-a-token"]);
    assert_eq!(status, 1, "{err}");
    assert_eq!(
        out,
        "errors:\n  [token.format] the token has no dots: a JWT has three dot-separated parts \
         (header.payload.signature), so check that it was copied whole (Twilio error 20101)\n    \
         fix: pass the whole token as minted: three base64url parts joined by dots\n\nverdict: \
         invalid (1 error, 0 warnings)\n"
    );
}

#[test]
fn doctor_without_secret_unverified() {
    let (status, out, err) = run(twilio_token().args([
        "doctor",
        "--at",
        NOW,
        "--account-sid",
        ACCOUNT_SID,
        &token(&claims()),
    ]));
    assert_eq!(status, 0, "{err}");
    assert_eq!(
        out,
        "no problems found\n\nnot checked:\n  signature: no API key secret was given\n\nverdict: \
         not verified (no secret given)\n"
    );
    assert_eq!(err, "");
}

#[test]
fn doctor_without_account_unverified() {
    let (status, out, _) = run(twilio_token()
        .args(["doctor", "--at", NOW, "--api-key-sid", API_KEY_SID])
        .env("TWILIO_API_SECRET", SECRET)
        .arg(token(&claims())));
    assert_eq!(status, 0);
    assert!(
        out.ends_with(
            "not checked:\n  account: no expected account SID was given\n\nverdict: not verified \
             (no account SID given)\n"
        ),
        "{out}"
    );
}

#[test]
fn doctor_key_sid_without_secret_skips_signature() {
    let (status, out, _) = run(twilio_token()
        .args(["doctor", "--at", NOW, "--api-key-sid", API_KEY_SID])
        .arg(token(&claims())));
    assert_eq!(status, 0);
    assert!(
        out.ends_with("verdict: not verified (no secret or account SID given)\n"),
        "{out}"
    );
}

#[test]
fn doctor_unverified_with_warning_counted() {
    let mut claims = claims();
    claims["jti"] = json!("token-1");
    let (status, out, _) = run(twilio_token().args(["doctor", "--at", NOW, &token(&claims)]));
    assert_eq!(status, 0);
    assert!(
        out.ends_with("verdict: not verified (no secret or account SID given; 1 warning)\n"),
        "{out}"
    );
}

#[test]
fn doctor_auth_token_warned() {
    let (status, _, err) = run(twilio_token()
        .args(["doctor", "--at", NOW])
        .env("TWILIO_AUTH_TOKEN", "placeholder-auth-token")
        .arg(token(&claims())));
    assert_eq!(status, 0);
    assert_eq!(
        err,
        "warning: TWILIO_AUTH_TOKEN is set but cannot check the signature: Access Tokens are \
         signed with an API key's secret, so set TWILIO_API_SECRET or pass --api-secret-file\n"
    );
}

#[test]
fn doctor_stdin_one_newline_removed() {
    let token = token(&claims());
    for ending in ["\n", "\r\n"] {
        let (status, out, _) = run(check("doctor")
            .args(["--at", NOW, "-"])
            .write_stdin(format!("{token}{ending}")));
        assert_eq!(status, 0, "{ending:?}");
        assert_eq!(out, "no problems found\n\nverdict: valid\n", "{ending:?}");
    }
}

#[test]
fn doctor_stdin_second_newline_reported() {
    let token = token(&claims());
    let (status, out, _) = run(check("doctor")
        .args(["--at", NOW, "-"])
        .write_stdin(format!("{token}\n\n")));
    assert_eq!(status, 0);
    assert!(
        out.starts_with(
            "warnings:\n  [token.whitespace] the token has whitespace or a newline around it\n"
        ),
        "{out}"
    );
}

#[test]
fn doctor_argument_whitespace_reported() {
    let token = format!(" {}", token(&claims()));
    let (status, out, _) = doctor(&[&token]);
    assert_eq!(status, 0);
    assert!(out.contains("[token.whitespace]"), "{out}");
    assert!(out.ends_with("verdict: valid (1 warning)\n"), "{out}");
}

#[test]
fn doctor_key_file_finds_signing_key() {
    // The token names the first key in iss but is signed with the second key's secret.
    let signed = sign(&header(), &claims(), SECOND_SECRET.as_bytes());
    let keys = key_file(
        "doctor-keys",
        &format!("{API_KEY_SID}={SECRET}\n{SECOND_KEY_SID}={SECOND_SECRET}\n"),
    );
    let (status, out, err) = run(twilio_token()
        .args([
            "doctor",
            "--at",
            NOW,
            "--account-sid",
            ACCOUNT_SID,
            "--key-file",
        ])
        .arg(&keys)
        .arg(&signed));

    assert_eq!(status, 1, "{err}");
    assert!(
        out.starts_with(&format!(
            "errors:\n  [signature.other-key] the token is signed with the secret of \
             {SECOND_KEY_SID}, but its iss is \"{API_KEY_SID}\" (Twilio error 20107)\n"
        )),
        "{out}"
    );
    common::assert_secret_absent(&out, SECOND_SECRET);
    common::assert_secret_absent(&out, SECRET);
}

#[test]
fn doctor_json_fields() {
    let mut claims = claims();
    claims["exp"] = json!(ISSUED_AT + 60);
    claims["jti"] = json!("token-1");
    let (status, out, err) = doctor(&["--json", &token(&claims)]);
    assert_eq!(status, 1, "{err}");
    assert_eq!(err, "");

    let document: Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(document["verdict"], json!("invalid"));
    assert_eq!(document["skipped"], json!([]));
    let findings = document["findings"].as_array().expect("findings list");
    assert_eq!(findings.len(), 2);

    let expired = &findings[0];
    assert_eq!(expired["severity"], json!("error"));
    assert_eq!(expired["check"], json!("claims.expired"));
    assert_eq!(expired["twilio_code"], json!(20104));
    assert_eq!(
        expired["message"],
        json!(
            "the token expired 9m ago (exp 1700000060, now 1700000600, leeway 60s): mint a new one"
        )
    );
    assert!(
        expired["fix"]
            .as_str()
            .expect("fix")
            .starts_with("mint a new token")
    );

    let jti = &findings[1];
    assert_eq!(jti["severity"], json!("warning"));
    assert_eq!(jti["check"], json!("claims.jti-format"));
    assert_eq!(jti["twilio_code"], Value::Null);
    let keys: Vec<&String> = jti.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["severity", "check", "twilio_code", "message", "fix"]);
}

#[test]
fn doctor_json_verdicts() {
    let valid = token(&claims());
    let (status, out, _) = doctor(&["--json", &valid]);
    assert_eq!(status, 0);
    let document: Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(
        document,
        json!({"verdict": "valid", "findings": [], "skipped": []})
    );

    let (status, out, _) = run(twilio_token().args(["doctor", "--at", NOW, "--json", &valid]));
    assert_eq!(status, 0);
    let document: Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(document["verdict"], json!("unverified"));
    assert_eq!(
        document["skipped"],
        json!([
            "account: no expected account SID was given",
            "signature: no API key secret was given"
        ])
    );
}

#[test]
fn doctor_leeway_applies() {
    let mut claims = claims();
    claims["exp"] = json!(ISSUED_AT + 500);
    let token = token(&claims);
    // The token expired 100 seconds before the check.
    let (status, _, _) = doctor(&["--leeway", "99s", &token]);
    assert_eq!(status, 1);
    let (status, _, _) = doctor(&["--leeway", "1m40s", &token]);
    assert_eq!(status, 0);
}

#[test]
fn doctor_invalid_account_usage_error() {
    let (status, out, err) = run(twilio_token().args([
        "doctor",
        "--account-sid",
        "SKfedcba9876543210fedcba9876543210",
        &token(&claims()),
    ]));
    assert_eq!(status, 2);
    assert!(
        err.starts_with(
            "error: the account SID \"SKfedcba9876543210fedcba9876543210\" looks like an API key \
             SID"
        ),
        "{err}"
    );
    assert_eq!(out, "");
}

#[test]
fn doctor_empty_token_usage_error() {
    let (status, _, err) = run(twilio_token().args(["doctor", "-"]).write_stdin("\n"));
    assert_eq!(status, 2);
    assert_eq!(
        err,
        "error: the token is empty: pass it as the argument, or on stdin with -\n"
    );
}

#[test]
fn doctor_secret_never_printed() {
    let spaced = "FAKE spaced secret: do not use 0123";
    let newline_signed = sign(&header(), &claims(), format!("{spaced}\n").as_bytes());
    for args in [
        vec![newline_signed.as_str()],
        vec!["--json", newline_signed.as_str()],
        vec!["e30.e30.e30"],
    ] {
        let (_, out, err) = run(check("doctor")
            .env("TWILIO_API_SECRET", spaced)
            .args(["--at", NOW])
            .args(&args));
        common::assert_secret_absent(&out, spaced);
        common::assert_secret_absent(&err, spaced);
    }
}
