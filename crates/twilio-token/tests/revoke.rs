//! `twilio-token revoke`: entries written to the store the server reads, listed and removed,
//! with the errors a user sees.

mod common;

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

use common::{run, twilio_token};

fn data_dir(name: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("revoke")
        .join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("scratch folder");
    folder
}

fn revoke(folder: &PathBuf, args: &[&str]) -> Command {
    let mut command = twilio_token();
    command
        .arg("revoke")
        .args(args)
        .arg("--data-dir")
        .arg(folder);
    command
}

/// Replaces the times that depend on when the test runs (`revoked <time>`) with `<TIME>`.
fn without_revocation_times(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once(", revoked ") {
            Some((head, _)) => format!("{head}, revoked <TIME>"),
            None => match line.split_once(": revoked ") {
                Some((head, _)) => format!("{head}: revoked <TIME>"),
                None => line.to_owned(),
            },
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn revoke_identity_jti_list_and_remove() {
    let folder = data_dir("cycle");

    let (status, forever, stderr) = run(&mut revoke(&folder, &["identity", "alice"]));
    assert_eq!(status, 0, "{stderr}");
    let (status, before, stderr) = run(&mut revoke(
        &folder,
        &["identity", "bob", "--before", "2023-11-14T22:13:20Z"],
    ));
    assert_eq!(status, 0, "{stderr}");
    // Tokens live at most a day, so an entry that far back revokes nothing.
    assert!(
        stderr.starts_with(
            "warning: every token of bob issued before 2023-11-14T22:13:20Z has expired"
        ),
        "{stderr}"
    );
    let jti = "SKfedcba9876543210fedcba9876543210-1700000000";
    let (status, revoked_jti, stderr) = run(&mut revoke(&folder, &["jti", jti]));
    assert_eq!(status, 0, "{stderr}");
    let (status, list, stderr) = run(&mut revoke(&folder, &["list"]));
    assert_eq!(status, 0, "{stderr}");

    insta::assert_snapshot!(
        "revoke_cycle",
        format!(
            "{forever}{before}{revoked_jti}--- list\n{}",
            without_revocation_times(&list)
        )
    );

    let (status, json, stderr) = run(&mut revoke(&folder, &["list", "--json"]));
    assert_eq!(status, 0, "{stderr}");
    let json: Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(json["identities"][0]["identity"], "alice");
    assert_eq!(json["identities"][0]["before"], Value::Null);
    assert_eq!(json["identities"][1]["before"], 1_700_000_000);
    assert_eq!(json["jtis"][0]["jti"], jti);

    let (status, removed, stderr) = run(&mut revoke(&folder, &["remove", "identity", "alice"]));
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(removed, "removed the entry of identity alice\n");
    let (status, _, stderr) = run(&mut revoke(&folder, &["remove", "identity", "alice"]));
    assert_eq!(status, 2);
    assert_eq!(
        stderr,
        "error: there is no entry for identity alice: see `twilio-token revoke list`\n"
    );
}

#[test]
fn revoke_rejects_bad_input_with_exit_2() {
    let folder = data_dir("bad-input");
    let cases: [(&[&str], &str); 3] = [
        (
            &["identity", "alice", "--before", "yesterday"],
            "error: --before \"yesterday\" is not a time: write now, Unix seconds, or a UTC time \
             such as 2026-12-04T22:00:00Z\n",
        ),
        (
            &["jti", "has space"],
            "error: \"has space\" is not a jti: give the token's jti claim, 1 to 256 characters \
             without spaces, such as SK0123456789abcdef0123456789abcdef-1764885600\n",
        ),
        (
            &["identity", ""],
            "error: the identity is empty: set it to the user's name or id in your app\n",
        ),
    ];
    for (args, expected) in cases {
        let (status, stdout, stderr) = run(&mut revoke(&folder, args));
        assert_eq!(status, 2, "{args:?}");
        assert_eq!(stdout, "", "{args:?}");
        assert_eq!(stderr, expected, "{args:?}");
    }
}

#[test]
fn revoke_jti_warns_on_unusual_form() {
    let folder = data_dir("jti-form");

    let (status, stdout, stderr) = run(&mut revoke(&folder, &["jti", "garbage"]));
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "revoked the token garbage\n");
    assert!(
        stderr.starts_with("warning: \"garbage\" is not of the form <API key SID>-<issue time>"),
        "{stderr}"
    );

    let jti = "SK0123456789abcdef0123456789abcdef-1764885600";
    let (status, _, stderr) = run(&mut revoke(&folder, &["jti", jti]));
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stderr, "", "a jti of the usual form gets no warning");
}

#[test]
fn revoke_warns_when_config_has_no_section() {
    let folder = data_dir("no-section");
    let config = folder.join("config.toml");
    std::fs::write(&config, "[server]\n").expect("written");

    let output = twilio_token()
        .args(["revoke", "list", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&folder)
        .output()
        .expect("runs");

    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "no revocations\n");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(
            "has no [revocation] section, so the server reads no deny list: add [revocation] to \
             the file"
        ),
        "{output:?}"
    );
}

#[test]
fn help_revoke_snapshot() {
    let (status, stdout, stderr) = run(twilio_token().args(["revoke", "--help"]));
    assert_eq!(status, 0, "{stderr}");
    insta::assert_snapshot!("help_revoke", stdout);

    let (status, stdout, stderr) = run(twilio_token().args(["revoke", "identity", "--help"]));
    assert_eq!(status, 0, "{stderr}");
    insta::assert_snapshot!("help_revoke_identity", stdout);
}
