//! `twilio-token audit` against logs the tests write, and the durability of the audit log: the
//! real `serve` binary under load is killed with SIGKILL, and after a restart every token a
//! client received has its record, in SQLite and in PostgreSQL with two servers sharing one
//! table.

mod common;
#[path = "../../twilio-token-server/tests/support/postgres.rs"]
mod pg;

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use twilio_token_server::audit::sqlite::SqliteSink;
use twilio_token_server::audit::{AuditRecord, AuditSink as _, Outcome};

use common::{API_KEY_SID, SECRET, run, twilio_token};

/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Creates an empty folder for one test under Cargo's scratch folder.
fn scratch_folder(name: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("audit")
        .join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("scratch folder created");
    folder
}

/// A record with fixed values, for the table and filter tests.
fn record(
    time: u64,
    request_id: &str,
    identity: Option<&str>,
    reason: Option<&str>,
) -> AuditRecord {
    let issued = reason.is_none();
    AuditRecord {
        time,
        request_id: request_id.to_owned(),
        outcome: if issued {
            Outcome::Issued
        } else {
            Outcome::Refused
        },
        status: if issued { 200 } else { 403 },
        reason: reason.map(str::to_owned),
        identity: identity.map(str::to_owned),
        subject: identity.map(|_| "backend".to_owned()),
        auth_method: identity.map(|_| "api_key".to_owned()),
        profile: issued.then(|| "default".to_owned()),
        grants: if issued {
            vec!["chat".into(), "video".into()]
        } else {
            Vec::new()
        },
        ttl: issued.then_some(600),
        jti: issued.then(|| format!("{API_KEY_SID}-{time}")),
        client_addr: Some("127.0.0.1".to_owned()),
    }
}

/// Writes four records to `data/audit.sqlite3` in a new folder and returns the data folder.
fn sample_log(name: &str) -> PathBuf {
    let data = scratch_folder(name).join("data");
    let mut sink = SqliteSink::new(data.join("audit.sqlite3"));
    sink.prepare().expect("the log opens");
    sink.write_batch(&[
        record(1_700_000_000, "0a1b2c3d-1", Some("alice"), None),
        record(
            1_700_000_060,
            "0a1b2c3d-2",
            Some("mallory"),
            Some("no_matching_rule"),
        ),
        record(
            1_700_003_600,
            "0a1b2c3d-3",
            None,
            Some("missing_credentials"),
        ),
        record(1_700_007_200, "0a1b2c3d-4", Some("alice"), None),
    ])
    .expect("records written");
    data
}

fn audit(data: &Path, args: &[&str]) -> (i32, String, String) {
    run(twilio_token()
        .arg("audit")
        .arg("--data-dir")
        .arg(data)
        .args(args))
}

fn audit_json(data: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = audit(data, &all);
    assert_eq!(status, 0, "{stderr}");
    let value: Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    value.as_array().expect("a JSON array").clone()
}

fn request_ids(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|record| record["request_id"].as_str().expect("request_id"))
        .collect()
}

#[test]
fn audit_table_lists_records() {
    let data = sample_log("table");
    let (status, stdout, stderr) = audit(&data, &[]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stderr, "");
    insta::assert_snapshot!("audit_table", stdout);
}

#[test]
fn audit_json_has_every_field() {
    let data = sample_log("json");
    let records = audit_json(&data, &["--identity", "alice", "--limit", "1"]);
    insta::assert_json_snapshot!("audit_json_newest_alice", records);
}

#[test]
fn audit_filters_identity_outcome_time() {
    let data = sample_log("filters");
    let ids = |args: &[&str]| -> Vec<String> {
        request_ids(&audit_json(&data, args))
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        ids(&[]),
        ["0a1b2c3d-1", "0a1b2c3d-2", "0a1b2c3d-3", "0a1b2c3d-4"]
    );
    assert_eq!(ids(&["--identity", "alice"]), ["0a1b2c3d-1", "0a1b2c3d-4"]);
    assert_eq!(ids(&["--outcome", "refused"]), ["0a1b2c3d-2", "0a1b2c3d-3"]);
    assert_eq!(
        ids(&["--since", "2023-11-14T22:14:20Z"]),
        ["0a1b2c3d-2", "0a1b2c3d-3", "0a1b2c3d-4"]
    );
    assert_eq!(
        ids(&["--until", "1700003600"]),
        ["0a1b2c3d-1", "0a1b2c3d-2"]
    );
    assert_eq!(
        ids(&[
            "--since",
            "1700000060",
            "--until",
            "1700007200",
            "--outcome",
            "refused"
        ]),
        ["0a1b2c3d-2", "0a1b2c3d-3"]
    );
    assert_eq!(ids(&["--limit", "2"]), ["0a1b2c3d-3", "0a1b2c3d-4"]);
    assert!(ids(&["--identity", "nobody"]).is_empty());
    let (status, stdout, _) = audit(&data, &["--identity", "nobody"]);
    assert_eq!(status, 0);
    assert_eq!(stdout, "no audit records match\n");
}

#[test]
fn audit_invalid_since_exits_2() {
    let data = sample_log("invalid_since");
    let (status, stdout, stderr) = audit(&data, &["--since", "2023-02-30"]);
    assert_eq!(status, 2);
    assert_eq!(stdout, "");
    insta::assert_snapshot!("audit_invalid_since", stderr);
}

#[test]
fn audit_reversed_range_exits_2() {
    let data = sample_log("reversed_range");
    let (status, stdout, stderr) =
        audit(&data, &["--since", "1700007200", "--until", "1700000060"]);
    assert_eq!(status, 2);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "error: --since (2023-11-15T00:13:20Z) is after --until (2023-11-14T22:14:20Z), so no \
         record can match: swap the two\n"
    );
}

#[test]
fn audit_missing_log_exits_2() {
    let data = scratch_folder("missing").join("data");
    let (status, stdout, stderr) = audit(&data, &[]);
    assert_eq!(status, 2);
    assert_eq!(stdout, "");
    let stderr = stderr.replace(&data.display().to_string(), "[DATA]");
    insta::assert_snapshot!("audit_missing_log", stderr);
}

#[test]
fn audit_stdout_sink_exits_2() {
    let folder = scratch_folder("stdout_sink");
    let config = folder.join("server.toml");
    std::fs::write(&config, "[audit]\nsink = \"stdout\"\n").expect("written");
    let (status, _, stderr) = run(twilio_token().args(["audit", "--config"]).arg(&config));
    assert_eq!(status, 2);
    insta::assert_snapshot!("audit_stdout_sink", stderr);
}

#[test]
fn audit_help() {
    let (status, stdout, _) = run(twilio_token().args(["audit", "--help"]));
    assert_eq!(status, 0);
    insta::assert_snapshot!("help_audit", stdout);
}

#[test]
fn config_check_masks_audit_password() {
    let folder = scratch_folder("config_check_mask");
    let config = folder.join("server.toml");
    std::fs::write(
        &config,
        "[audit]\nsink = \"postgres\"\nurl = \"postgresql://app:hunter22@127.0.0.1:5432/audit\"\n\n\
         [log]\nformat = \"json\"\n",
    )
    .expect("written");
    let (status, stdout, stderr) = run(twilio_token()
        .args(["config", "check", "--json", "--offline", "--config"])
        .arg(&config)
        .env("TWILIO_ACCOUNT_SID", common::ACCOUNT_SID)
        .env("TWILIO_API_KEY", API_KEY_SID)
        .env("TWILIO_API_SECRET", SECRET));
    assert_eq!(status, 0, "{stderr}");
    assert!(!stdout.contains("hunter22"));
    assert!(!stderr.contains("hunter22"));
    let view: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        view["audit"],
        serde_json::json!({
            "sink": "postgres",
            "url": "postgresql://app:***@127.0.0.1:5432/audit",
            "fail_open": false,
        })
    );
    assert_eq!(view["log"]["format"], "json");
}

#[test]
fn config_check_opens_postgres() {
    let folder = scratch_folder("config_check_unreachable");
    let config = folder.join("server.toml");
    // A loopback port that nothing listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    std::fs::write(
        &config,
        format!("[audit]\nsink = \"postgres\"\nurl = \"postgresql://app:hunter22@127.0.0.1:{port}/audit\"\n"),
    )
    .expect("written");
    let (status, stdout, stderr) = run(twilio_token()
        .args(["config", "check", "--config"])
        .arg(&config)
        .env("TWILIO_ACCOUNT_SID", common::ACCOUNT_SID)
        .env("TWILIO_API_KEY", API_KEY_SID)
        .env("TWILIO_API_SECRET", SECRET));
    assert_eq!(status, 2, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(&format!(
            "error: failed to open the audit log (postgres postgresql://app:***@127.0.0.1:{port}/audit)"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter22"), "{stderr}");
}

#[test]
fn config_check_opens_sqlite() {
    let folder = scratch_folder("config_check_sqlite");
    let config = folder.join("server.toml");
    // A regular file is where the audit log's folder should be.
    let blocker = folder.join("not-a-folder");
    std::fs::write(&blocker, "").expect("blocker");
    let path = blocker.join("audit.sqlite3").display().to_string();
    std::fs::write(
        &config,
        format!("[audit]\nsink = \"sqlite\"\npath = {path:?}\n"),
    )
    .expect("written");
    let check = |offline: bool| {
        let mut command = twilio_token();
        command
            .current_dir(&folder)
            .args(["config", "check", "--config"])
            .arg(&config)
            .env("TWILIO_ACCOUNT_SID", common::ACCOUNT_SID)
            .env("TWILIO_API_KEY", API_KEY_SID)
            .env("TWILIO_API_SECRET", SECRET);
        if offline {
            command.arg("--offline");
        }
        run(&mut command)
    };

    let (status, _, stderr) = check(false);
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.starts_with("error: failed to open the audit log (sqlite "),
        "{stderr}"
    );
    assert!(stderr.contains("not-a-folder"), "{stderr}");

    let (status, _, stderr) = check(true);
    assert_eq!(status, 0, "--offline skips the audit log: {stderr}");
}

#[test]
fn config_check_rejects_postgres_without_url() {
    let folder = scratch_folder("config_check_no_url");
    let config = folder.join("server.toml");
    std::fs::write(&config, "[audit]\nsink = \"postgres\"\n").expect("written");
    let (status, _, stderr) = run(twilio_token()
        .args(["config", "check", "--config"])
        .arg(&config)
        .env("TWILIO_ACCOUNT_SID", common::ACCOUNT_SID)
        .env("TWILIO_API_KEY", API_KEY_SID)
        .env("TWILIO_API_SECRET", SECRET));
    assert_eq!(status, 2);
    assert_eq!(
        stderr,
        "error: audit.url: the postgres sink needs a connection string: set url, such as \
         \"postgresql://twilio_token@127.0.0.1:5432/twilio_token\"\n"
    );
}

// ---- durability under SIGKILL ----

/// A `serve` process started by a test, killed when the test ends however it ends.
struct Server {
    child: Child,
    lines: Receiver<String>,
    stderr: Vec<String>,
    address: SocketAddr,
}

impl Server {
    fn start(folder: &Path, config: &Path) -> Server {
        let mut child = StdCommand::new(env!("CARGO_BIN_EXE_twilio-token"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--config",
            ])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("TWILIO_API_SECRET", SECRET)
            .current_dir(folder)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            stderr: Vec::new(),
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        server.address = server.wait_listening();
        server
    }

    fn wait_listening(&mut self) -> SocketAddr {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no listening line; stderr: {:?}", self.stderr));
            self.stderr.push(line.clone());
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if event["message"] == "listening" {
                return event["address"]
                    .as_str()
                    .expect("address")
                    .parse()
                    .expect("address parses");
            }
        }
    }

    /// Kills the process with SIGKILL and waits for it.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("server reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Generates an API key for identity `alice` and returns the key and its configuration block.
fn generate_key() -> (String, String) {
    let (status, stdout, stderr) = run(twilio_token().args([
        "api-key",
        "generate",
        "--name",
        "backend",
        "--identity",
        "alice",
    ]));
    assert_eq!(status, 0, "{stderr}");
    (stdout.trim_end().to_owned(), stderr)
}

/// Writes a configuration with the key block, a Video rule for `alice` and `audit` as the
/// `[audit]` section.
fn write_config(folder: &Path, key_block: &str, audit: &str) -> PathBuf {
    let text = format!(
        "[server]\ndata_dir = \"{}\"\n\n{key_block}\n\
         [[profiles]]\naccount_sid = \"{}\"\n\
         api_keys = [{{ sid = \"{API_KEY_SID}\", secret_env = \"TWILIO_API_SECRET\" }}]\n\n\
         [[policy.rules]]\nidentities = [\"alice\"]\ngrants = {{ video = {{}} }}\n\n\
         [audit]\n{audit}\n",
        folder.join("data").display(),
        common::ACCOUNT_SID,
    );
    let path = folder.join("server.toml");
    std::fs::write(&path, text).expect("configuration written");
    path
}

/// A token a client received: the response's request id and the token's `jti`.
type Receipt = (String, String);

/// Sends `POST /token` on one kept-alive connection after another until the server stops
/// answering or `stop` is set, and returns what it received.
fn load(address: SocketAddr, key: &str, stop: &AtomicBool) -> Vec<Receipt> {
    let mut received = Vec::new();
    let Ok(mut stream) = TcpStream::connect(address) else {
        return received;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    while !stop.load(Ordering::Relaxed) {
        if stream.write_all(request.as_bytes()).is_err() {
            break;
        }
        let Some((status, request_id, body)) = read_response(&mut stream) else {
            break;
        };
        assert_eq!(status, 200, "body: {body}");
        let body: Value = serde_json::from_str(&body).expect("token response");
        let token = body["token"].as_str().expect("token");
        received.push((request_id, jti_of(token)));
    }
    received
}

/// Reads one response: status, `X-Request-Id` and body. Returns `None` when the connection
/// ends before a whole response, as it does when the server is killed.
fn read_response(stream: &mut TcpStream) -> Option<(u16, String, String)> {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0;
    let mut request_id = String::new();
    for line in head.lines() {
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().ok()?,
                "x-request-id" => request_id = value.trim().to_owned(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some((status, request_id, String::from_utf8(body).ok()?))
}

fn jti_of(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("JSON");
    claims["jti"].as_str().expect("jti").to_owned()
}

/// Starts `threads` load threads against `address` and returns their handles.
fn start_load(
    address: SocketAddr,
    key: &str,
    threads: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<Vec<Receipt>>> {
    (0..threads)
        .map(|_| {
            let key = key.to_owned();
            let stop = Arc::clone(stop);
            thread::spawn(move || load(address, &key, &stop))
        })
        .collect()
}

fn join_all(handles: Vec<thread::JoinHandle<Vec<Receipt>>>) -> Vec<Receipt> {
    handles
        .into_iter()
        .flat_map(|handle| handle.join().expect("load thread"))
        .collect()
}

/// Reads every record through `twilio-token audit --json` with `config`, and checks that each
/// receipt has an issued record with its request id and `jti`. Returns the issued records.
fn check_receipts(config: &Path, receipts: &[Receipt]) -> Vec<Value> {
    let (status, stdout, stderr) = run(twilio_token()
        .args(["audit", "--json", "--limit", "0", "--config"])
        .arg(config));
    assert_eq!(status, 0, "{stderr}");
    let records: Vec<Value> = serde_json::from_str(&stdout).expect("JSON array");
    let issued: Vec<Value> = records
        .into_iter()
        .filter(|record| record["outcome"] == "issued")
        .collect();
    let logged: HashSet<(&str, &str)> = issued
        .iter()
        .map(|record| {
            (
                record["request_id"].as_str().expect("request_id"),
                record["jti"].as_str().expect("jti"),
            )
        })
        .collect();
    let missing: Vec<&Receipt> = receipts
        .iter()
        .filter(|(request_id, jti)| !logged.contains(&(request_id.as_str(), jti.as_str())))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} received tokens have no audit record, such as {:?}",
        missing.len(),
        receipts.len(),
        missing.first()
    );
    assert!(
        issued.len() >= receipts.len(),
        "no more tokens than records"
    );
    issued
}

// The counts show with `cargo test -- --nocapture`, as a record of the run.
#[allow(clippy::print_stderr)]
#[test]
fn sqlite_survives_sigkill_under_load() {
    let folder = scratch_folder("sigkill_sqlite");
    let (key, block) = generate_key();
    let config = write_config(&folder, &block, "sink = \"sqlite\"");
    let mut server = Server::start(&folder, &config);

    let stop = Arc::new(AtomicBool::new(false));
    let handles = start_load(server.address, &key, 8, &stop);
    thread::sleep(Duration::from_millis(1500));
    server.kill();
    let receipts = join_all(handles);

    let restarted = Server::start(&folder, &config);
    let issued = check_receipts(&config, &receipts);
    eprintln!(
        "sqlite: {} tokens received before SIGKILL, {} issued records",
        receipts.len(),
        issued.len()
    );
    assert!(
        receipts.len() >= 100,
        "only {} tokens under load",
        receipts.len()
    );
    drop(restarted);
}

#[allow(clippy::print_stderr)]
#[test]
fn postgres_two_servers_survive_sigkill_under_load() {
    let postgres = pg::Postgres::start("sigkill");
    let (key, block) = generate_key();
    let audit = format!("sink = \"postgres\"\nurl = \"{}\"", postgres.url());
    let folder_a = scratch_folder("sigkill_postgres_a");
    let folder_b = scratch_folder("sigkill_postgres_b");
    let config_a = write_config(&folder_a, &block, &audit);
    let config_b = write_config(&folder_b, &block, &audit);
    let mut server_a = Server::start(&folder_a, &config_a);
    let server_b = Server::start(&folder_b, &config_b);

    let stop = Arc::new(AtomicBool::new(false));
    let handles_a = start_load(server_a.address, &key, 4, &stop);
    let handles_b = start_load(server_b.address, &key, 4, &stop);
    thread::sleep(Duration::from_millis(1500));
    server_a.kill();
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let receipts_a = join_all(handles_a);
    let receipts_b = join_all(handles_b);

    let restarted = Server::start(&folder_a, &config_a);
    let mut receipts = receipts_a.clone();
    receipts.extend(receipts_b.iter().cloned());
    let issued = check_receipts(&config_a, &receipts);
    eprintln!(
        "postgres: {} + {} tokens received from the two servers, {} issued records",
        receipts_a.len(),
        receipts_b.len(),
        issued.len()
    );
    assert!(
        receipts_a.len() >= 50,
        "only {} tokens from A",
        receipts_a.len()
    );
    assert!(
        receipts_b.len() >= 50,
        "only {} tokens from B",
        receipts_b.len()
    );

    // Request ids start with a random prefix per process, so both servers wrote to the table.
    let prefixes: HashSet<&str> = issued
        .iter()
        .filter_map(|record| record["request_id"].as_str()?.split('-').next())
        .collect();
    assert_eq!(prefixes.len(), 2, "records from both servers: {prefixes:?}");
    drop(restarted);
}

/// Sends one `POST /token` on a new connection and returns the status and `X-Request-Id`.
fn post_once(address: SocketAddr, key: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connected");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout set");
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).expect("request sent");
    let (status, request_id, _) = read_response(&mut stream).expect("a response");
    (status, request_id)
}

#[test]
fn serve_logs_audit_outage_once_as_json() {
    let mut postgres = pg::Postgres::start("outage_log");
    let folder = scratch_folder("outage_log");
    let (key, block) = generate_key();
    // The test server trusts every local user, so the password is never checked, but it must
    // never be printed.
    let url = postgres.url().replace("postgres@", "postgres:hunter22@");
    let config = write_config(
        &folder,
        &block,
        &format!("sink = \"postgres\"\nurl = \"{url}\"\n\n[log]\nformat = \"json\""),
    );
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_twilio-token"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("TWILIO_API_SECRET", SECRET)
        .current_dir(&folder)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (sender, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = Server {
        child,
        lines,
        stderr: Vec::new(),
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    server.address = server.wait_listening();

    let (status, _) = post_once(server.address, &key);
    assert_eq!(status, 200);
    postgres.stop();
    let mut failed_ids = Vec::new();
    for _ in 0..3 {
        let (status, request_id) = post_once(server.address, &key);
        assert_eq!(status, 503);
        failed_ids.push(request_id);
    }
    postgres.resume();
    let (status, _) = post_once(server.address, &key);
    assert_eq!(status, 200);

    let status = StdCommand::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    server.child.wait().expect("server exits");
    server.stderr.extend(server.lines.try_iter());
    let text = server.stderr.join("\n");
    assert!(!text.contains("hunter22"), "the password is logged: {text}");

    let events: Vec<Value> = server
        .stderr
        .iter()
        .map(|line| serde_json::from_str(line).expect("every log line is JSON"))
        .collect();
    let named = |message: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|event| {
                event["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .collect()
    };
    let listening = named("listening");
    assert_eq!(listening.len(), 1);
    assert_eq!(
        listening[0]["audit"],
        format!(
            "postgres postgresql://postgres:***@127.0.0.1:{}/postgres?connect_timeout=2",
            postgres.port()
        )
    );
    assert_eq!(listening[0]["version"], env!("CARGO_PKG_VERSION"));

    let failures = named("audit records could not be written");
    assert_eq!(failures.len(), 1, "one error line per outage: {text}");
    assert_eq!(failures[0]["level"], "ERROR");
    assert_eq!(failures[0]["sink"], "postgres");
    let logged_ids = failures[0]["request_ids"].as_str().expect("request ids");
    assert!(logged_ids.contains(&failed_ids[0]), "{logged_ids}");

    let recoveries = named("audit sink recovered");
    assert_eq!(recoveries.len(), 1, "{text}");
    assert_eq!(recoveries[0]["failed_records"], 3);
    assert_eq!(named("stopped").len(), 1, "{text}");
}

#[test]
fn serve_demo_opens_sqlite_log_in_data_dir() {
    let folder = scratch_folder("demo_sqlite");
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_twilio-token"))
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "info")
        .env_remove("TWILIO_ACCOUNT_SID")
        .env_remove("TWILIO_API_KEY")
        .env_remove("TWILIO_API_SECRET")
        .current_dir(&folder)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (sender, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = Server {
        child,
        lines,
        stderr: Vec::new(),
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    server.address = server.wait_listening();

    let listening: Value = server
        .stderr
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["message"] == "listening")
        .expect("listening event");
    assert_eq!(listening["audit"], "sqlite twilio-token-data/audit.sqlite3");
    let data = folder.join("twilio-token-data");
    assert!(data.join("audit.sqlite3").exists(), "opened at start-up");

    let (status, stdout, stderr) = audit(&data, &[]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "no audit records match\n");
}

#[test]
fn serve_unreachable_postgres_exits_2() {
    let postgres = pg::Postgres::start("unreachable_serve");
    let port = postgres.port();
    drop(postgres);
    let folder = scratch_folder("unreachable_serve");
    let (_, block) = generate_key();
    let config = write_config(
        &folder,
        &block,
        &format!(
            "sink = \"postgres\"\nurl = \"postgresql://postgres:hunter22@127.0.0.1:{port}/postgres\""
        ),
    );
    let (status, stdout, stderr) = run(twilio_token()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("TWILIO_API_SECRET", SECRET)
        .current_dir(&folder));
    assert_eq!(status, 2, "{stderr}");
    assert_eq!(stdout, "");
    let expected_start = format!(
        "error: failed to open the audit log (postgres \
         postgresql://postgres:***@127.0.0.1:{port}/postgres): failed to connect: "
    );
    assert!(stderr.starts_with(&expected_start), "{stderr}");
    assert!(
        stderr.ends_with(": fix [audit] or the database, or set [audit] sink = \"off\"\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter22"), "{stderr}");
}
