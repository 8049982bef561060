//! `twilio-token verify`: tokens minted by `mint` and by hand, the time window and its leeway,
//! key files, `--json`, usage errors, and that the secret never appears in any output.

mod common;

use serde_json::{Value, json};
use twilio_access_token::{DecodeError, MintError, SidError, SidKind, SidProblem, VerifyError};

use common::{
    ACCOUNT_SID, API_KEY_SID, ISSUED_AT, OTHER_ACCOUNT_SID, SECOND_KEY_SID, SECOND_SECRET, SECRET,
    SERVICE_SID, check, claims, header, key_file, mint, run, scratch_path, sign, stderr, stdout,
    token, twilio_token,
};

/// The expiry of the minted token: one hour after [`ISSUED_AT`].
const EXP: u64 = ISSUED_AT + 3600;

/// Mints a token with `mint`, issued at [`ISSUED_AT`], with the extra flags.
fn minted(args: &[&str]) -> String {
    let output = mint()
        .args(["--identity", "alice", "--issued-at", &ISSUED_AT.to_string()])
        .args(args)
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    stdout(&output).trim_end().to_owned()
}

/// Runs `verify` with the standard credentials at `at` and returns status, stdout and stderr.
fn verify_at(token: &str, at: u64, args: &[&str]) -> (i32, String, String) {
    run(check("verify")
        .args(["--at", &at.to_string()])
        .args(args)
        .arg(token))
}

/// Returns the stderr line of a rejected token.
fn rejection(error: &VerifyError) -> String {
    format!("invalid: {error} (Twilio error {})\n", error.twilio_code())
}

fn assert_rejected(result: (i32, String, String), error: &VerifyError) {
    let (status, out, err) = result;
    assert_eq!(status, 1, "{err}");
    assert_eq!(err, rejection(error));
    assert_eq!(out, "");
}

#[test]
fn verify_minted_token_valid() {
    let token = minted(&["--chat-service-sid", SERVICE_SID, "--video"]);
    let (status, out, err) = verify_at(&token, ISSUED_AT + 50, &[]);

    assert_eq!(status, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "valid: identity \"alice\", grants chat, video; expires 2023-11-14T23:13:20Z (in 59m \
             10s); signed by {API_KEY_SID}\n"
        )
    );
    assert_eq!(err, "");
}

#[test]
fn verify_summary_names_region_and_unknown_grants() {
    let mut claims = claims();
    claims["grants"]["rtc"] = json!({"configuration_profile_sid": "JP1"});
    let mut header = header();
    header["twr"] = json!("au1");
    let token = sign(&header, &claims, SECRET.as_bytes());

    let (status, out, err) = verify_at(&token, ISSUED_AT, &[]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "valid: identity \"alice\", grants chat, rtc (unknown); expires \
             2023-11-14T23:13:20Z (in 1h); region au1; signed by {API_KEY_SID}\n"
        )
    );
}

#[test]
fn verify_stdin_whitespace_ignored() {
    let token = minted(&["--video"]);
    let (status, out, err) = run(check("verify")
        .args(["--at", &ISSUED_AT.to_string(), "-"])
        .write_stdin(format!("\n  {token}\r\n")));
    assert_eq!(status, 0, "{err}");
    assert!(
        out.starts_with("valid: identity \"alice\", grants video;"),
        "{out}"
    );
}

#[test]
fn verify_before_nbf_rejected() {
    let nbf = ISSUED_AT + 600;
    let token = minted(&["--video", "--nbf", &nbf.to_string()]);

    assert_rejected(
        verify_at(&token, nbf - 61, &[]),
        &VerifyError::NotYetValid {
            nbf,
            now: nbf - 61,
            leeway: 60,
        },
    );
    assert_eq!(
        rejection(&VerifyError::NotYetValid {
            nbf,
            now: nbf - 61,
            leeway: 60,
        }),
        "invalid: the token is not valid for another 1m 1s (nbf 1700000600, now 1700000539, \
         leeway 60s): check the clocks of the minting server and this machine (Twilio error \
         20105)\n"
    );

    let (status, out, err) = verify_at(&token, nbf - 60, &[]);
    assert_eq!(status, 0, "{err}");
    assert!(
        out.contains("; not before 2023-11-14T22:23:20Z (in 1m, accepted within the 60s leeway);"),
        "{out}"
    );
}

#[test]
fn verify_after_exp_and_leeway_rejected() {
    let token = minted(&["--video"]);

    let (status, out, err) = verify_at(&token, EXP + 60, &[]);
    assert_eq!(status, 0, "{err}");
    assert!(
        out.contains("; expired 2023-11-14T23:13:20Z (1m ago, accepted within the 60s leeway);"),
        "{out}"
    );

    let expired = VerifyError::Expired {
        exp: EXP,
        now: EXP + 61,
        leeway: 60,
    };
    assert_rejected(verify_at(&token, EXP + 61, &[]), &expired);
    assert_eq!(
        rejection(&expired),
        "invalid: the token expired 1m 1s ago (exp 1700003600, now 1700003661, leeway 60s): mint \
         a new one (Twilio error 20104)\n"
    );
}

#[test]
fn verify_leeway_zero_edge() {
    let token = minted(&["--video"]);

    let (status, out, err) = verify_at(&token, EXP, &["--leeway", "0"]);
    assert_eq!(status, 0, "{err}");
    assert!(
        out.contains("; expires 2023-11-14T23:13:20Z (now);"),
        "{out}"
    );

    assert_rejected(
        verify_at(&token, EXP + 1, &["--leeway", "0"]),
        &VerifyError::Expired {
            exp: EXP,
            now: EXP + 1,
            leeway: 0,
        },
    );
}

#[test]
fn verify_leeway_duration_forms() {
    let token = minted(&["--video"]);

    for leeway in ["2m", "120s", "120", "1m60s"] {
        let (status, _, err) = verify_at(&token, EXP + 120, &["--leeway", leeway]);
        assert_eq!(status, 0, "--leeway {leeway}: {err}");
        assert_rejected(
            verify_at(&token, EXP + 121, &["--leeway", leeway]),
            &VerifyError::Expired {
                exp: EXP,
                now: EXP + 121,
                leeway: 120,
            },
        );
    }
}

#[test]
fn verify_invalid_leeway_usage_error() {
    let token = minted(&["--video"]);
    for (leeway, message) in [
        (
            "2 minutes",
            "error: the leeway \"2 minutes\" is not a number of seconds or a duration: write 60, \
             90s or 2m\n",
        ),
        (
            "2h",
            "error: the leeway \"2h\" is over 1h: use at most 3600 seconds, or --at to check the \
             token at another time\n",
        ),
    ] {
        let (status, out, err) = verify_at(&token, ISSUED_AT, &["--leeway", leeway]);
        assert_eq!(status, 2);
        assert_eq!(err, message);
        assert_eq!(out, "");
    }
}

#[test]
fn verify_wrong_secret_bad_signature() {
    let token = minted(&["--video"]);
    let result = run(check("verify")
        .env("TWILIO_API_SECRET", "FAKEotherSecretDoNotUse012345678")
        .args(["--at", &ISSUED_AT.to_string(), &token]));

    let error = VerifyError::BadSignature {
        api_key_sid: API_KEY_SID.into(),
    };
    assert_eq!(error.twilio_code(), 20107);
    assert_rejected(result, &error);
}

#[test]
fn verify_key_file_iss_picks_second_key() {
    let mut claims = claims();
    claims["iss"] = json!(SECOND_KEY_SID);
    claims["jti"] = json!(format!("{SECOND_KEY_SID}-{ISSUED_AT}"));
    let token = sign(&header(), &claims, SECOND_SECRET.as_bytes());
    let keys = key_file(
        "keys-two",
        &format!(
            "# current and next key\n{API_KEY_SID}={SECRET}\n\n{SECOND_KEY_SID} {SECOND_SECRET}\n"
        ),
    );

    let (status, out, err) = run(twilio_token()
        .args(["verify", "--account-sid", ACCOUNT_SID, "--key-file"])
        .arg(&keys)
        .args(["--at", &ISSUED_AT.to_string(), &token]));
    assert_eq!(status, 0, "{err}");
    assert!(
        out.ends_with(&format!("; signed by {SECOND_KEY_SID}\n")),
        "{out}"
    );
}

#[test]
fn verify_key_file_adds_to_flag_key() {
    let second = {
        let mut claims = claims();
        claims["iss"] = json!(SECOND_KEY_SID);
        sign(&header(), &claims, SECOND_SECRET.as_bytes())
    };
    let first = token(&claims());
    let keys = key_file(
        "keys-second-only",
        &format!("{SECOND_KEY_SID}={SECOND_SECRET}\n"),
    );

    for (token, signer) in [(first, API_KEY_SID), (second, SECOND_KEY_SID)] {
        let (status, out, err) = run(check("verify").arg("--key-file").arg(&keys).args([
            "--at",
            &ISSUED_AT.to_string(),
            &token,
        ]));
        assert_eq!(status, 0, "{err}");
        assert!(out.ends_with(&format!("; signed by {signer}\n")), "{out}");
    }
}

#[test]
fn verify_key_file_covers_flag_sid_without_secret() {
    let keys = key_file("keys-first", &format!("{API_KEY_SID}={SECRET}\n"));
    let (status, _, err) = run(check("verify")
        .env_remove("TWILIO_API_SECRET")
        .arg("--key-file")
        .arg(&keys)
        .args(["--at", &ISSUED_AT.to_string(), &token(&claims())]));
    assert_eq!(status, 0, "{err}");
}

#[test]
fn verify_key_file_conflicting_secret_rejected() {
    let keys = key_file("keys-conflict", &format!("{API_KEY_SID}={SECOND_SECRET}\n"));
    let (status, out, err) = run(check("verify").arg("--key-file").arg(&keys).args([
        "--at",
        &ISSUED_AT.to_string(),
        &token(&claims()),
    ]));

    assert_eq!(status, 2);
    assert_eq!(
        err,
        format!(
            "error: the API key {API_KEY_SID} has one secret from the environment and another on \
             line 1 of the key file {:?}: remove the wrong one\n",
            keys.display().to_string()
        )
    );
    assert_eq!(out, "");
    common::assert_secret_absent(&err, SECRET);
    common::assert_secret_absent(&err, SECOND_SECRET);
}

#[test]
fn verify_key_file_same_key_counted_once() {
    let keys = key_file("keys-same", &format!("{API_KEY_SID}={SECRET}\n"));
    let (status, _, err) = run(check("verify").arg("--key-file").arg(&keys).args([
        "--at",
        &ISSUED_AT.to_string(),
        &token(&claims()),
    ]));
    assert_eq!(status, 0, "{err}");
}

#[test]
fn verify_key_file_malformed_line_not_echoed() {
    let keys = key_file("keys-malformed", &format!("{SECRET}\n"));
    let (status, out, err) = run(check("verify").arg("--key-file").arg(&keys).args([
        "--at",
        &ISSUED_AT.to_string(),
        &token(&claims()),
    ]));

    assert_eq!(status, 2);
    assert_eq!(
        err,
        format!(
            "error: line 1 of the key file {:?} is not an API key: write each key as SK…=SECRET \
             or SK… SECRET (a file holding only a secret goes to --api-secret-file)\n",
            keys.display().to_string()
        )
    );
    assert_eq!(out, "");
}

#[test]
fn verify_key_file_missing_usage_error() {
    let (status, _, err) = run(check("verify").args([
        "--key-file",
        "/nonexistent/keys.txt",
        "--at",
        &ISSUED_AT.to_string(),
        &token(&claims()),
    ]));
    assert_eq!(status, 2);
    assert!(
        err.starts_with(
            "error: failed to read the API keys from the file \"/nonexistent/keys.txt\": "
        ),
        "{err}"
    );
}

#[test]
fn verify_key_file_only_comments_rejected() {
    let keys = key_file("keys-comments", "# no keys yet\n\n");
    let (status, _, err) = run(twilio_token()
        .args(["verify", "--account-sid", ACCOUNT_SID, "--key-file"])
        .arg(&keys)
        .arg(token(&claims())));
    assert_eq!(status, 2);
    assert_eq!(
        err,
        format!(
            "error: the key file {:?} contains no API key: write one key per line as SK…=SECRET\n",
            keys.display().to_string()
        )
    );
}

#[cfg(unix)]
#[test]
fn verify_key_file_open_mode_warned() {
    use std::os::unix::fs::PermissionsExt as _;

    let keys = key_file("keys-mode", &format!("{API_KEY_SID}={SECRET}\n"));
    let command = |keys: &std::path::Path| {
        run(twilio_token()
            .args(["verify", "--account-sid", ACCOUNT_SID, "--key-file"])
            .arg(keys)
            .args(["--at", &ISSUED_AT.to_string(), &token(&claims())]))
    };

    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (status, out, err) = command(&keys);
    assert_eq!(status, 0, "{err}");
    assert!(out.starts_with("valid: "), "{out}");
    assert_eq!(
        err,
        format!(
            "warning: the key file {:?} can be accessed by other users (mode 0644): restrict it \
             with chmod 600\n",
            keys.display().to_string()
        )
    );

    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (status, _, err) = command(&keys);
    assert_eq!(status, 0, "{err}");
    assert_eq!(err, "");
}

#[test]
fn verify_unknown_iss_rejected() {
    let mut claims = claims();
    claims["iss"] = json!(SECOND_KEY_SID);
    let token = sign(&header(), &claims, SECOND_SECRET.as_bytes());

    let error = VerifyError::UnknownApiKey {
        iss: SECOND_KEY_SID.into(),
    };
    assert_eq!(error.twilio_code(), 20103);
    assert_rejected(verify_at(&token, ISSUED_AT, &[]), &error);
}

#[test]
fn verify_wrong_account_rejected() {
    let token = minted(&["--video"]);
    let result = run(twilio_token()
        .args(["verify", "--account-sid", OTHER_ACCOUNT_SID])
        .args(["--api-key-sid", API_KEY_SID, "--at", &ISSUED_AT.to_string()])
        .env("TWILIO_API_SECRET", SECRET)
        .arg(&token));

    let error = VerifyError::WrongAccount {
        expected: OTHER_ACCOUNT_SID.into(),
        found: Some(format!("\"{ACCOUNT_SID}\"")),
    };
    assert_eq!(error.twilio_code(), 20103);
    assert_rejected(result, &error);
}

#[test]
fn verify_malformed_token_rejected() {
    let error = VerifyError::Malformed(DecodeError::SegmentCount { found: 2 });
    assert_eq!(error.twilio_code(), 20101);
    assert_rejected(
        verify_at("eyJhbGciOiJIUzI1NiJ9.e30", ISSUED_AT, &[]),
        &error,
    );

    let error = VerifyError::Malformed(DecodeError::SegmentCount { found: 1 });
    assert_rejected(verify_at("not-a-token", ISSUED_AT, &[]), &error);
}

#[test]
fn verify_empty_token_usage_error() {
    let (status, out, err) = run(check("verify").arg("-").write_stdin(" \n"));
    assert_eq!(status, 2);
    assert_eq!(
        err,
        "error: the token is empty: pass it as the argument, or on stdin with -\n"
    );
    assert_eq!(out, "");
}

#[test]
fn verify_json_valid_fields() {
    let token = minted(&[
        "--chat-service-sid",
        SERVICE_SID,
        "--voice-incoming",
        "--region",
        "ie1",
        "--nbf",
        "1699999990",
    ]);
    let (status, out, err) = verify_at(&token, ISSUED_AT, &["--json"]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(err, "");

    let document: Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(document["valid"], json!(true));
    assert_eq!(document["identity"], json!("alice"));
    assert_eq!(
        document["grants"],
        json!({"chat": {"service_sid": SERVICE_SID}, "voice": {"incoming": {"allow": true}}})
    );
    assert_eq!(document["unknown_grants"], json!({}));
    assert_eq!(document["iat"], json!(ISSUED_AT));
    assert_eq!(document["nbf"], json!(1_699_999_990));
    assert_eq!(document["exp"], json!(EXP));
    assert_eq!(document["iss"], json!(API_KEY_SID));
    assert_eq!(document["sub"], json!(ACCOUNT_SID));
    assert_eq!(document["jti"], json!(format!("{API_KEY_SID}-{ISSUED_AT}")));
    assert_eq!(document["region"], json!("ie1"));
    let keys: Vec<&String> = document.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        [
            "valid",
            "identity",
            "grants",
            "unknown_grants",
            "iat",
            "nbf",
            "exp",
            "iss",
            "sub",
            "jti",
            "region"
        ]
    );
}

#[test]
fn verify_json_absent_claims_null() {
    let mut claims = claims();
    let claims_object = claims.as_object_mut().expect("object");
    claims_object.shift_remove("jti");
    claims_object.shift_remove("iat");
    let token = token(&claims);

    let (status, out, err) = verify_at(&token, ISSUED_AT, &["--json"]);
    assert_eq!(status, 0, "{err}");
    let document: Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(document["iat"], Value::Null);
    assert_eq!(document["nbf"], Value::Null);
    assert_eq!(document["jti"], Value::Null);
    assert_eq!(document["region"], Value::Null);
}

#[test]
fn verify_json_rejected_fields() {
    let token = minted(&["--video"]);
    let (status, out, err) = verify_at(&token, EXP + 61, &["--json"]);
    assert_eq!(status, 1);
    assert_eq!(err, "");

    let expired = VerifyError::Expired {
        exp: EXP,
        now: EXP + 61,
        leeway: 60,
    };
    let document: Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(document["valid"], json!(false));
    assert_eq!(document["error"]["twilio_code"], json!(20104));
    assert_eq!(document["error"]["kind"], json!("expired"));
    assert_eq!(document["error"]["message"], json!(expired.to_string()));
    assert_eq!(document.as_object().expect("object").len(), 2);
    assert_eq!(document["error"].as_object().expect("object").len(), 3);
}

#[test]
fn verify_json_error_kinds() {
    let signed_elsewhere = sign(&header(), &claims(), b"FAKEotherSecretDoNotUse012345678");
    let mut no_identity = claims();
    no_identity["grants"] = json!({"video": {}});
    let mut none_header = header();
    none_header["alg"] = json!("none");

    for (token, kind, code) in [
        ("a.b".to_owned(), "malformed", 20101),
        (signed_elsewhere, "bad_signature", 20107),
        (token(&no_identity), "missing_identity", 20106),
        (
            sign(&none_header, &claims(), b""),
            "unsupported_algorithm",
            20102,
        ),
    ] {
        let (status, out, _) = verify_at(&token, ISSUED_AT, &["--json"]);
        assert_eq!(status, 1, "{kind}");
        let document: Value = serde_json::from_str(&out).expect("stdout is JSON");
        assert_eq!(document["error"]["kind"], json!(kind));
        assert_eq!(document["error"]["twilio_code"], json!(code), "{kind}");
    }
}

#[test]
fn verify_without_secret_usage_error() {
    let token = minted(&["--video"]);
    let (status, out, err) = run(check("verify").env_remove("TWILIO_API_SECRET").arg(&token));

    assert_eq!(status, 2);
    assert_eq!(
        err,
        "error: the API secret is missing: set TWILIO_API_SECRET (or TWILIO_API_KEY_SECRET) or \
         pass --api-secret-file with the secret shown once when the API key was created\n"
    );
    assert_eq!(out, "");
}

#[test]
fn verify_without_any_key_usage_error() {
    let (status, _, err) = run(twilio_token()
        .args(["verify", "--account-sid", ACCOUNT_SID])
        .arg(token(&claims())));
    assert_eq!(status, 2);
    assert_eq!(
        err,
        "error: no API key was given: pass --api-key-sid (or set TWILIO_API_KEY) with the secret \
         in TWILIO_API_SECRET or --api-secret-file, or list keys in --key-file\n"
    );
}

#[test]
fn verify_secret_without_key_sid_usage_error() {
    let (status, _, err) = run(twilio_token()
        .args(["verify", "--account-sid", ACCOUNT_SID])
        .env("TWILIO_API_SECRET", SECRET)
        .arg(token(&claims())));
    assert_eq!(status, 2);
    assert!(
        err.starts_with("error: the API key SID is missing: "),
        "{err}"
    );
}

#[test]
fn verify_auth_token_only_explained() {
    let (status, _, err) = run(check("verify")
        .env_remove("TWILIO_API_SECRET")
        .env("TWILIO_AUTH_TOKEN", "placeholder-auth-token")
        .arg(token(&claims())));

    assert_eq!(status, 2);
    assert!(
        err.starts_with(
            "error: the API secret is missing, and TWILIO_AUTH_TOKEN cannot replace it: "
        ),
        "{err}"
    );
    assert!(!err.contains("placeholder-auth-token"), "{err}");
}

#[test]
fn verify_without_account_usage_error() {
    let (status, _, err) = run(twilio_token()
        .args(["verify", "--api-key-sid", API_KEY_SID])
        .env("TWILIO_API_SECRET", SECRET)
        .arg(token(&claims())));
    assert_eq!(status, 2);
    assert_eq!(
        err,
        "error: the account SID is missing: pass --account-sid or set TWILIO_ACCOUNT_SID to your \
         account's SID (AC…) from the Twilio Console\n"
    );
}

#[test]
fn verify_invalid_account_usage_error() {
    let (status, _, err) = run(twilio_token()
        .args([
            "verify",
            "--account-sid",
            "AC123",
            "--api-key-sid",
            API_KEY_SID,
        ])
        .env("TWILIO_API_SECRET", SECRET)
        .arg(token(&claims())));

    let expected = SidError {
        expected: SidKind::Account,
        value: "AC123".into(),
        problem: SidProblem::WrongLength { found: 3 },
    };
    assert_eq!(status, 2);
    assert_eq!(err, format!("error: {expected}\n"));
}

#[test]
fn verify_secret_and_token_both_stdin_rejected() {
    let (status, _, err) = run(check("verify").args(["--api-secret-file", "-", "-"]));
    assert_eq!(status, 2);
    assert_eq!(
        err,
        "error: the token and --api-secret-file cannot both read stdin: put the secret in a file \
         or in TWILIO_API_SECRET\n"
    );
}

#[test]
fn verify_secret_file_newline_stripped() {
    let secret = scratch_path("verify-secret", format!("{SECRET}\n").as_bytes());
    let (status, _, err) = run(check("verify")
        .env_remove("TWILIO_API_SECRET")
        .arg("--api-secret-file")
        .arg(&secret)
        .args(["--at", &ISSUED_AT.to_string(), &token(&claims())]));
    assert_eq!(status, 0, "{err}");
}

#[test]
fn verify_secret_never_printed() {
    // A secret with spaces, to find any part of it that leaks.
    let spaced = "FAKE spaced secret: do not use 0123";
    let signed = sign(&header(), &claims(), spaced.as_bytes());
    let keys = key_file(
        "keys-leak",
        &format!("{SECOND_KEY_SID}={spaced}\n{spaced}\n"),
    );

    let runs = [
        run(check("verify").env("TWILIO_API_SECRET", spaced).args([
            "--at",
            &ISSUED_AT.to_string(),
            &signed,
        ])),
        run(check("verify").env("TWILIO_API_SECRET", spaced).args([
            "--at",
            &ISSUED_AT.to_string(),
            "--json",
            &signed,
        ])),
        run(check("verify").env("TWILIO_API_SECRET", spaced).args([
            "--at",
            &(EXP + 3600).to_string(),
            &signed,
        ])),
        run(check("verify").env("TWILIO_API_SECRET", spaced).args([
            "--at",
            &ISSUED_AT.to_string(),
            &token(&claims()),
        ])),
        run(check("verify")
            .env("TWILIO_API_SECRET", spaced)
            .arg("--key-file")
            .arg(&keys)
            .arg(&signed)),
        run(check("verify")
            .env("TWILIO_API_SECRET", spaced)
            .env("TWILIO_API_KEY_SECRET", "FAKE qwzxvbnm 4567")
            .arg(&signed)),
    ];

    let statuses: Vec<i32> = runs.iter().map(|(status, _, _)| *status).collect();
    assert_eq!(statuses, [0, 0, 1, 1, 2, 2]);
    for (_, out, err) in &runs {
        common::assert_secret_absent(out, spaced);
        common::assert_secret_absent(err, spaced);
        common::assert_secret_absent(err, "FAKE qwzxvbnm 4567");
    }
}

#[test]
fn verify_mint_errors_unchanged() {
    // `verify` shares the credential code with `mint`; mint's messages stay as they were.
    let output = twilio_token()
        .args([
            "mint",
            "--account-sid",
            ACCOUNT_SID,
            "--api-key-sid",
            API_KEY_SID,
        ])
        .args(["--identity", "alice"])
        .env("TWILIO_API_SECRET", " padded ")
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!("error: {}\n", MintError::ApiSecretWhitespace)
    );
}

/// The tokens that Twilio's official libraries minted, in the library's shared fixture.
const VECTORS: &str = include_str!("../../twilio-access-token/tests/fixtures/vectors-shared.json");

/// What `verify` must do with a fixture token at the case's time.
enum VectorOutcome {
    /// Exit 0 with a summary.
    Valid,
    /// Exit 1 with this error.
    Rejected(VerifyError),
    /// Exit 2 with this message, for an input that cannot be used.
    Unusable(String),
}

/// The expected outcomes, copied from the table of the library's `verify_vectors` test: the
/// binary must agree with the library on every fixture token.
fn vector_outcome(id: &str, library: &str) -> VectorOutcome {
    use VectorOutcome::{Rejected, Unusable, Valid};

    match (id, library) {
        ("no_identity_no_grants" | "region_au1_no_identity", "python") => {
            Rejected(VerifyError::MissingIdentity)
        }
        ("identity_integer", "python") => {
            Rejected(VerifyError::IdentityNotString { value: "42".into() })
        }
        ("identity_float", "python") => Rejected(VerifyError::IdentityNotString {
            value: "1.5".into(),
        }),
        // twilio-node drops a non-integer identity, so its token has none.
        ("identity_float", "node") => Rejected(VerifyError::MissingIdentity),
        ("ttl_86401", "python") => Rejected(VerifyError::LifetimeTooLong {
            lifetime: 86_401,
            from: "nbf",
            max: 86_400,
        }),
        ("ttl_86401", "node") => Rejected(VerifyError::LifetimeTooLong {
            lifetime: 86_401,
            from: "iat",
            max: 86_400,
        }),
        ("ttl_float", "python") => Rejected(VerifyError::InvalidTime {
            claim: "exp",
            value: "1700000001.5".into(),
        }),
        ("nbf_explicit_future", _) => Rejected(VerifyError::NotYetValid {
            nbf: 1_700_000_600,
            now: 1_700_000_000,
            leeway: 60,
        }),
        ("alg_hs512", _) => Rejected(VerifyError::UnsupportedAlgorithm {
            alg: Some("\"HS512\"".into()),
        }),
        // The account SID is not a SID, so it is rejected as an input before the token is read.
        ("sids_unusual_values", _) => Unusable(
            SidError {
                expected: SidKind::Account,
                value: "AC-not-a-real-sid".into(),
                problem: SidProblem::WrongLength { found: 15 },
            }
            .to_string(),
        ),
        _ => Valid,
    }
}

#[test]
fn verify_official_library_tokens() {
    let document: Value = serde_json::from_str(VECTORS).expect("fixture is JSON");
    let mut checked = 0;
    for case in document["vectors"].as_array().expect("vectors list") {
        let id = case["id"].as_str().expect("id");
        let input = &case["input"];
        let at = input["fixed_now_ms"].as_u64().expect("fixed_now_ms") / 1000;

        for library in ["python", "node"] {
            if case[library]["ok"] != true {
                continue;
            }
            let jwt = case[library]["jwt"].as_str().expect("jwt");
            let (status, out, err) = run(twilio_token()
                .env(
                    "TWILIO_API_SECRET",
                    input["api_secret"].as_str().expect("api_secret"),
                )
                .args(["verify", "--account-sid"])
                .arg(input["account_sid"].as_str().expect("account_sid"))
                .arg("--api-key-sid")
                .arg(input["api_key_sid"].as_str().expect("api_key_sid"))
                .args(["--at", &at.to_string(), jwt]));

            let context = format!("{id} from {library}: {err}");
            match vector_outcome(id, library) {
                VectorOutcome::Valid => {
                    assert_eq!(status, 0, "{context}");
                    assert!(out.starts_with("valid: identity "), "{context}");
                }
                VectorOutcome::Rejected(error) => {
                    assert_eq!(status, 1, "{context}");
                    assert_eq!(err, rejection(&error), "{context}");
                }
                VectorOutcome::Unusable(message) => {
                    assert_eq!(status, 2, "{context}");
                    assert_eq!(err, format!("error: {message}\n"), "{context}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 96, "only {checked} tokens checked");
}
