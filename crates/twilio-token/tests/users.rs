//! `twilio-token users`: passwords from stdin, the database the server reads, and exit statuses.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use twilio_token_server::auth::users::UserStore;

const PASSWORD: &str = "FAKEpasswordDoNotUse-0123";

/// A fresh data folder under the system's temporary folder, removed on drop.
struct DataDir(PathBuf);

impl DataDir {
    fn new(test: &str) -> DataDir {
        use std::hash::{BuildHasher, RandomState};
        let suffix = RandomState::new().hash_one(std::time::SystemTime::now());
        DataDir(std::env::temp_dir().join(format!(
            "twilio-token-cli-users-{test}-{}-{suffix}",
            std::process::id()
        )))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn users(data_dir: &DataDir, args: &[&str]) -> Command {
    let mut command = common::twilio_token();
    command
        .arg("users")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir.path());
    command
}

/// Checks a password against the database with the server's own store.
fn password_matches(data_dir: &DataDir, name: &str, password: &str) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store =
            UserStore::open(&data_dir.path().join("users.sqlite3")).expect("the database opens");
        store
            .verify_password(name, password)
            .await
            .expect("the check runs")
    })
}

fn listed(data_dir: &DataDir) -> Value {
    let output = users(data_dir, &["list", "--json"]).output().expect("runs");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON list")
}

#[test]
fn add_reads_password_from_stdin() {
    let data_dir = DataDir::new("add");

    users(
        &data_dir,
        &["add", "alice", "--group", "staff", "--group", "ops"],
    )
    .write_stdin(format!("{PASSWORD}\n"))
    .assert()
    .success()
    .stdout("added user alice\n")
    .stderr("");

    assert!(password_matches(&data_dir, "alice", PASSWORD));
    assert!(!password_matches(
        &data_dir,
        "alice",
        &format!("{PASSWORD}\n")
    ));
    let list = listed(&data_dir);
    assert_eq!(list[0]["name"], "alice");
    assert_eq!(list[0]["groups"], serde_json::json!(["staff", "ops"]));
}

#[test]
fn add_keeps_only_first_line_without_newline() {
    let data_dir = DataDir::new("first-line");

    users(&data_dir, &["add", "alice"])
        .write_stdin(format!("{PASSWORD}\r\nsecond line\n"))
        .assert()
        .success();

    assert!(password_matches(&data_dir, "alice", PASSWORD));
}

#[test]
fn add_existing_user_fails() {
    let data_dir = DataDir::new("existing");
    users(&data_dir, &["add", "alice"])
        .write_stdin(PASSWORD)
        .assert()
        .success();

    users(&data_dir, &["add", "ALICE"])
        .write_stdin(PASSWORD)
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            "error: a user named \"ALICE\" already exists: change the password with \
             `twilio-token users passwd ALICE`\n",
        );
}

#[test]
fn add_rejects_bad_input() {
    let data_dir = DataDir::new("bad-input");
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["add", "alice"],
            "short\n",
            "error: the password is not valid: it is shorter than 10 characters\n",
        ),
        (
            &["add", "alice"],
            "",
            "error: no password on stdin: type it at a terminal, or pipe it in as the first line\n",
        ),
        (
            &["add", "alice smith"],
            PASSWORD,
            "error: the user name \"alice smith\" is not valid: use only ASCII letters, digits \
             and the characters . _ @ -\n",
        ),
        (
            &["add", "alice", "--group", "a/b"],
            PASSWORD,
            "error: the group name \"a/b\" is not valid: use only ASCII letters, digits and the \
             characters . _ @ -\n",
        ),
    ];

    for (args, stdin, stderr) in cases {
        users(&data_dir, args)
            .write_stdin(stdin)
            .assert()
            .code(2)
            .stdout("")
            .stderr(stderr);
    }
    assert_eq!(listed(&data_dir), serde_json::json!([]));
}

#[test]
fn password_never_in_output() {
    let data_dir = DataDir::new("no-echo");

    let add = users(&data_dir, &["add", "alice"])
        .write_stdin(PASSWORD)
        .output()
        .expect("runs");
    let passwd = users(&data_dir, &["passwd", "alice"])
        .write_stdin("FAKEshort")
        .output()
        .expect("runs");

    for output in [add, passwd] {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!text.contains("FAKE"), "{text}");
    }
}

#[test]
fn passwd_replaces_password() {
    let data_dir = DataDir::new("passwd");
    users(&data_dir, &["add", "alice"])
        .write_stdin(PASSWORD)
        .assert()
        .success();

    users(&data_dir, &["passwd", "alice"])
        .write_stdin("FAKEnewPasswordDoNotUse\n")
        .assert()
        .success()
        .stdout("changed the password of alice and ended their sessions\n");

    assert!(!password_matches(&data_dir, "alice", PASSWORD));
    assert!(password_matches(
        &data_dir,
        "alice",
        "FAKEnewPasswordDoNotUse"
    ));
}

#[test]
fn commands_other_than_add_create_no_database() {
    let data_dir = DataDir::new("no-database");
    let database = data_dir.path().join("users.sqlite3");

    users(&data_dir, &["list", "--json"])
        .assert()
        .success()
        .stdout("[]\n");
    users(&data_dir, &["list"])
        .assert()
        .success()
        .stdout("")
        .stderr("no users: add one with `twilio-token users add NAME`\n");
    for command in ["remove", "passwd"] {
        users(&data_dir, &[command, "alice"])
            .assert()
            .code(2)
            .stderr(format!(
                "error: no user is named \"alice\": there is no user database at {} yet; add \
             users with `twilio-token users add NAME`\n",
                database.display()
            ));
    }

    assert!(!data_dir.path().exists(), "the data folder was created");
}

#[test]
fn passwd_unknown_user_fails_before_reading() {
    let data_dir = DataDir::new("passwd-unknown");
    users(&data_dir, &["add", "alice"])
        .write_stdin(PASSWORD)
        .assert()
        .success();

    users(&data_dir, &["passwd", "nobody"])
        .assert()
        .code(2)
        .stderr(
            "error: no user is named \"nobody\": list the users with `twilio-token users list`\n",
        );
}

#[test]
fn remove_deletes_user() {
    let data_dir = DataDir::new("remove");
    users(&data_dir, &["add", "alice"])
        .write_stdin(PASSWORD)
        .assert()
        .success();

    users(&data_dir, &["remove", "alice"])
        .assert()
        .success()
        .stdout("removed user alice and ended their sessions\n");
    users(&data_dir, &["remove", "alice"]).assert().code(2);

    assert_eq!(listed(&data_dir), serde_json::json!([]));
}

#[test]
fn list_prints_table() {
    let data_dir = DataDir::new("list");
    users(&data_dir, &["list"])
        .assert()
        .success()
        .stdout("")
        .stderr("no users: add one with `twilio-token users add NAME`\n");
    users(&data_dir, &["add", "bob", "--group", "staff"])
        .write_stdin(PASSWORD)
        .assert()
        .success();

    let output = users(&data_dir, &["list"]).output().expect("runs");

    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("NAME  CREATED"), "{text}");
    assert!(lines[1].starts_with("bob   "), "{text}");
    assert!(lines[1].ends_with("  staff"), "{text}");
}

#[test]
fn config_file_sets_database() {
    let data_dir = DataDir::new("config");
    std::fs::create_dir_all(data_dir.path()).expect("folder");
    let config = data_dir.path().join("server.toml");
    let users_dir = data_dir.path().join("state");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = '{}'\n\n[auth.users]\ndatabase = 'people.db'\n",
            users_dir.display()
        ),
    )
    .expect("config written");

    let mut command = common::twilio_token();
    command
        .args(["users", "add", "alice", "--config"])
        .arg(&config)
        .write_stdin(PASSWORD)
        .assert()
        .success();

    assert!(users_dir.join("people.db").is_file());
}
