//! The built `serve` binary under load: two replicas sharing one Redis budget, Redis stopped
//! and restarted, configuration reloads by SIGHUP and by a file change, and SIGTERM. Every
//! server and Redis runs on 127.0.0.1 and a free port.
#![allow(
    clippy::print_stdout,
    reason = "each load test prints its counts, shown with --nocapture"
)]

mod common;
#[path = "../../twilio-token-server/tests/support/postgres.rs"]
mod pg;
#[path = "../../twilio-token-server/tests/redis_server/mod.rs"]
mod redis_server;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use twilio_access_token::{ApiSecret, Verifier};

use common::{ACCOUNT_SID, API_KEY_SID, SECOND_KEY_SID, SECOND_SECRET, SECRET, run, twilio_token};
use redis_server::RedisServer;

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A `serve` process whose stderr lines are collected by a thread.
struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    new_line: Receiver<()>,
}

impl Server {
    fn start(folder: &Path, config: &Path) -> Server {
        let mut command = StdCommand::new(env!("CARGO_BIN_EXE_twilio-token"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TWILIO_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .current_dir(folder)
            .env("RUST_LOG", "info")
            .env("OLD_SECRET", SECRET)
            .env("NEW_SECRET", SECOND_SECRET)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--config",
            ])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (sender, new_line) = mpsc::channel();
        let collected = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                collected.lock().expect("lines").push(line);
                let _ = sender.send(());
            }
        });
        Server {
            child,
            lines,
            new_line,
        }
    }

    /// Waits for a JSON log line whose message contains `text`, and returns it.
    fn wait_for(&self, text: &str) -> Value {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(event) = self.events().into_iter().find(|event| {
                event["message"]
                    .as_str()
                    .is_some_and(|message| message.contains(text))
            }) {
                return event;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {text:?} line; stderr: {:?}",
                self.text()
            );
            let _ = self
                .new_line
                .recv_timeout(left.min(Duration::from_millis(100)));
        }
    }

    fn address(&self) -> SocketAddr {
        self.wait_for("listening")["address"]
            .as_str()
            .expect("address")
            .parse()
            .expect("address parses")
    }

    fn events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    fn count(&self, text: &str) -> usize {
        self.events()
            .iter()
            .filter(|event| event["message"].as_str().is_some_and(|m| m.contains(text)))
            .count()
    }

    fn text(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    fn signal(&self, name: &str) {
        let status = StdCommand::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name}");
    }

    fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("status") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch_folder(name: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("production")
        .join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("scratch folder");
    folder
}

/// Generates an API key for identity `alice`; returns the key and its configuration block.
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

/// A configuration with the key block, both Twilio keys (secrets in `OLD_SECRET` and
/// `NEW_SECRET`), `signing_key`, a Video rule for `alice`, and `extra` sections.
fn config_text(key_block: &str, signing_key: &str, extra: &str) -> String {
    format!(
        "[server]\nshutdown_grace_secs = 10\n\n{key_block}\n\
         [[profiles]]\naccount_sid = \"{ACCOUNT_SID}\"\nsigning_key = \"{signing_key}\"\n\
         api_keys = [{{ sid = \"{API_KEY_SID}\", secret_env = \"OLD_SECRET\" }}, \
         {{ sid = \"{SECOND_KEY_SID}\", secret_env = \"NEW_SECRET\" }}]\n\n\
         [[policy.rules]]\nidentities = [\"alice\"]\ngrants = {{ video = {{}} }}\n\n{extra}"
    )
}

/// One `POST /token` on a new connection: the status and body, or the I/O error.
fn post_token(address: SocketAddr, key: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(address).map_err(|error| format!("connect: {error}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|error| error.to_string())?;
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|error| format!("write: {error}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|error| format!("read: {error}"))?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Outcomes of a load run.
#[derive(Debug, Default)]
struct Tally {
    statuses: Vec<u16>,
    errors: Vec<String>,
    tokens: Vec<String>,
}

impl Tally {
    fn count(&self, status: u16) -> usize {
        self.statuses.iter().filter(|s| **s == status).count()
    }
}

/// Sends requests from `threads` threads, round robin over `addresses`, until `stop` is set.
fn load(
    addresses: Vec<SocketAddr>,
    key: String,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Tally> {
    thread::spawn(move || {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let addresses = addresses.clone();
                let key = key.clone();
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    let mut tally = Tally::default();
                    let mut index = worker;
                    while !stop.load(Ordering::Relaxed) {
                        let address = addresses[index % addresses.len()];
                        index += 1;
                        match post_token(address, &key) {
                            Ok((status, body)) => {
                                tally.statuses.push(status);
                                if status == 200 {
                                    let body: Value =
                                        serde_json::from_str(&body).expect("JSON body");
                                    tally
                                        .tokens
                                        .push(body["token"].as_str().expect("token").to_owned());
                                }
                            }
                            Err(error) => tally.errors.push(error),
                        }
                    }
                    tally
                })
            })
            .collect();
        let mut total = Tally::default();
        for worker in workers {
            let tally = worker.join().expect("load thread");
            total.statuses.extend(tally.statuses);
            total.errors.extend(tally.errors);
            total.tokens.extend(tally.tokens);
        }
        total
    })
}

fn run_load(addresses: Vec<SocketAddr>, key: &str, duration: Duration) -> Tally {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = load(addresses, key.to_owned(), 4, Arc::clone(&stop));
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("load")
}

fn issuer(token: &str) -> String {
    let verifier = Verifier::builder(ACCOUNT_SID)
        .key(API_KEY_SID, ApiSecret::new(SECRET))
        .key(SECOND_KEY_SID, ApiSecret::new(SECOND_SECRET))
        .build()
        .expect("verifier");
    verifier.verify(token).expect("token verifies").api_key_sid
}

#[test]
fn two_replicas_share_redis_and_postgres() {
    let redis = RedisServer::start("replicas");
    let postgres = pg::Postgres::start("replicas");
    let folder = scratch_folder("replicas");
    let (key, block) = generate_key();
    let extra = format!(
        "[rate_limit]\nstore = \"redis\"\nredis_url = \"{}\"\n\
         per_identity = {{ burst = 20, per_minute = 60 }}\n\n\
         [audit]\nsink = \"postgres\"\nurl = \"{}\"\n",
        redis.url(),
        postgres.url()
    );
    let config = folder.join("config.toml");
    std::fs::write(&config, config_text(&block, API_KEY_SID, &extra)).expect("written");
    let first = Server::start(&folder, &config);
    let second = Server::start(&folder, &config);
    let addresses = vec![first.address(), second.address()];

    let started = Instant::now();
    let tally = run_load(addresses, &key, Duration::from_secs(3));
    let elapsed = started.elapsed().as_secs_f64();

    let allowed = tally.count(200);
    let limited = tally.count(429);
    println!(
        "two replicas: {} requests in {elapsed:.1} s, {allowed} x 200, {limited} x 429",
        tally.statuses.len()
    );
    assert!(tally.errors.is_empty(), "{:?}", tally.errors);
    assert_eq!(allowed + limited, tally.statuses.len(), "only 200 and 429");
    // A burst of 20, then one a second: each replica alone would allow that much too, so
    // more than the shared budget would show two budgets.
    let budget = 20 + elapsed.ceil() as usize + 1;
    assert!(
        (20..=budget).contains(&allowed),
        "{allowed} allowed, budget {budget}"
    );
    assert!(limited > 100, "{limited} limited");

    // Both replicas wrote every answer into the one audit table.
    let output = twilio_token()
        .args(["audit", "--json", "--limit", "0", "--config"])
        .arg(&config)
        .env("OLD_SECRET", SECRET)
        .env("NEW_SECRET", SECOND_SECRET)
        .output()
        .expect("audit runs");
    assert!(output.status.success(), "{output:?}");
    let records: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON array");
    let outcomes = |outcome: &str| {
        records
            .iter()
            .filter(|record| record["outcome"] == outcome)
            .count()
    };
    assert_eq!(outcomes("issued"), allowed, "issued records");
    assert_eq!(outcomes("refused"), limited, "refused records");
    // Request ids start with a random prefix per process.
    let prefixes: std::collections::HashSet<&str> = records
        .iter()
        .filter_map(|record| record["request_id"].as_str()?.split('-').next())
        .collect();
    assert_eq!(
        prefixes.len(),
        2,
        "records from both replicas: {prefixes:?}"
    );
    // The second start found the schema in place without PostgreSQL's notice in the log.
    assert_eq!(second.count("already exists"), 0, "{}", second.text());
}

#[test]
fn redis_restart_under_load_falls_back_and_logs_once() {
    let mut redis = RedisServer::start("outage");
    let folder = scratch_folder("outage");
    let (key, block) = generate_key();
    let extra = format!(
        "[rate_limit]\nstore = \"redis\"\nredis_url = \"{}\"\non_redis_error = \"local\"\n\
         per_identity = {{ burst = 1000000, per_minute = 6000000 }}\n",
        redis.url()
    );
    let config = folder.join("config.toml");
    std::fs::write(&config, config_text(&block, API_KEY_SID, &extra)).expect("written");
    let server = Server::start(&folder, &config);
    let address = server.address();

    let stop = Arc::new(AtomicBool::new(false));
    let handle = load(vec![address], key, 4, Arc::clone(&stop));
    thread::sleep(Duration::from_millis(700));
    redis.stop();
    thread::sleep(Duration::from_secs(2));
    redis.restart();
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let tally = handle.join().expect("load");
    server.wait_for("redis responds again");

    println!(
        "redis outage: {} requests, {} x 200, errors {}",
        tally.statuses.len(),
        tally.count(200),
        tally.errors.len()
    );
    assert!(tally.errors.is_empty(), "{:?}", tally.errors);
    assert_eq!(
        tally.count(200),
        tally.statuses.len(),
        "every request got 200"
    );
    assert_eq!(server.count("redis is unreachable"), 1, "{}", server.text());
    assert_eq!(server.count("redis responds again"), 1, "{}", server.text());
}

#[test]
fn reload_under_load_switches_signer_without_failures() {
    let folder = scratch_folder("reload");
    let (key, block) = generate_key();
    let config = folder.join("config.toml");
    std::fs::write(&config, config_text(&block, API_KEY_SID, "")).expect("written");
    let server = Server::start(&folder, &config);
    let address = server.address();

    let stop = Arc::new(AtomicBool::new(false));
    let handle = load(vec![address], key.clone(), 4, Arc::clone(&stop));
    thread::sleep(Duration::from_millis(500));
    // A file change switches the signer to the second key.
    std::fs::write(&config, config_text(&block, SECOND_KEY_SID, "")).expect("rewritten");
    server.wait_for("configuration reloaded");
    thread::sleep(Duration::from_millis(500));
    let after_file = post_token(address, &key).expect("answer");
    // A broken file is rejected and the running configuration stays.
    let broken = config_text(
        &block,
        API_KEY_SID,
        "[rate_limit]\nper_identity = { burst = 0, per_minute = 60 }\n",
    );
    std::fs::write(&config, broken).expect("broken");
    server.wait_for("configuration reload rejected");
    let after_broken = post_token(address, &key).expect("answer");
    // SIGHUP after the file is fixed, switching back to the first key and turning the audit
    // log off, which the log points out.
    let fixed = config_text(&block, API_KEY_SID, "[audit]\nsink = \"off\"\n");
    std::fs::write(&config, fixed).expect("fixed");
    thread::sleep(Duration::from_millis(1500));
    server.signal("HUP");
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let tally = handle.join().expect("load");

    println!(
        "reload: {} requests, {} x 200, errors {}",
        tally.statuses.len(),
        tally.count(200),
        tally.errors.len()
    );
    assert!(tally.errors.is_empty(), "{:?}", tally.errors);
    assert_eq!(
        tally.count(200),
        tally.statuses.len(),
        "every request got 200"
    );
    let signers: std::collections::BTreeSet<String> =
        tally.tokens.iter().map(|token| issuer(token)).collect();
    assert_eq!(signers.len(), 2, "both keys signed during the run");
    let token = |answer: (u16, String)| -> String {
        assert_eq!(answer.0, 200, "{}", answer.1);
        let body: Value = serde_json::from_str(&answer.1).expect("JSON");
        body["token"].as_str().expect("token").to_owned()
    };
    assert_eq!(issuer(&token(after_file)), SECOND_KEY_SID);
    assert_eq!(issuer(&token(after_broken)), SECOND_KEY_SID);
    let rejected = server.wait_for("configuration reload rejected");
    assert_eq!(
        rejected["key"], "rate_limit.per_identity.burst",
        "{rejected}"
    );
    let final_token = token(post_token(address, &key).expect("answer"));
    assert_eq!(issuer(&final_token), API_KEY_SID);
    assert!(
        server.count("configuration reloaded") >= 2,
        "{}",
        server.text()
    );
    let audit_change = server.wait_for("the audit log changes with this reload");
    assert!(
        audit_change["running"]
            .as_str()
            .is_some_and(|running| running.starts_with("sqlite")),
        "{audit_change}"
    );
    assert_eq!(audit_change["configured"], "off", "{audit_change}");
}

#[test]
fn reload_with_unopenable_audit_rejected() {
    let folder = scratch_folder("reload-audit");
    let (key, block) = generate_key();
    let config = folder.join("config.toml");
    std::fs::write(&config, config_text(&block, API_KEY_SID, "")).expect("written");
    let server = Server::start(&folder, &config);
    let address = server.address();
    assert_eq!(post_token(address, &key).expect("answer").0, 200);

    // A regular file is where the new audit log's folder should be, so it cannot be created.
    let blocker = folder.join("not-a-folder");
    std::fs::write(&blocker, "").expect("blocker");
    let audit_path = blocker.join("audit.sqlite3");
    let extra = format!(
        "[audit]\nsink = \"sqlite\"\npath = {:?}\n",
        audit_path.display().to_string()
    );
    std::fs::write(&config, config_text(&block, API_KEY_SID, &extra)).expect("rewritten");
    server.signal("HUP");

    let rejected = server.wait_for("configuration reload rejected");
    assert_eq!(rejected["key"], "audit", "{rejected}");
    let reason = rejected["reason"].as_str().expect("reason");
    assert!(reason.contains("not-a-folder"), "{reason}");
    assert_eq!(
        server.count("configuration reloaded"),
        0,
        "{}",
        server.text()
    );
    let (status, body) = post_token(address, &key).expect("answer");
    assert_eq!(status, 200, "the running audit log stays in use: {body}");
}

#[test]
fn sigterm_under_load_finishes_requests_in_flight() {
    let folder = scratch_folder("sigterm");
    let (key, block) = generate_key();
    let config = folder.join("config.toml");
    std::fs::write(&config, config_text(&block, API_KEY_SID, "")).expect("written");
    let mut server = Server::start(&folder, &config);
    let address = server.address();

    let stop = Arc::new(AtomicBool::new(false));
    let handle = load(vec![address], key, 4, Arc::clone(&stop));
    thread::sleep(Duration::from_millis(800));
    server.signal("TERM");
    let status = server.wait_for_exit();
    stop.store(true, Ordering::Relaxed);
    let tally = handle.join().expect("load");

    println!(
        "sigterm: {} answers, {} x 200, errors after the stop: {:?}",
        tally.statuses.len(),
        tally.count(200),
        tally.errors.iter().take(3).collect::<Vec<_>>()
    );
    assert!(status.success(), "exit status {status}");
    assert!(tally.count(200) > 50);
    assert_eq!(
        tally.count(200),
        tally.statuses.len(),
        "every answer is 200"
    );
    // A request that got part of an answer would have a malformed status line; requests after
    // the stop fail to connect or are reset before any byte of an answer.
    assert!(
        tally.errors.iter().all(|error| error.starts_with("connect")
            || error.starts_with("read")
            || error.starts_with("write")),
        "{:?}",
        tally.errors
    );
    assert_eq!(server.count("stopped"), 1, "{}", server.text());
}

#[test]
fn revoke_command_stops_new_tokens_of_running_server() {
    let folder = scratch_folder("revoke");
    let (key, block) = generate_key();
    let config = folder.join("config.toml");
    let extra = "[revocation]\nrefresh_secs = 1\n";
    std::fs::write(&config, config_text(&block, API_KEY_SID, extra)).expect("written");
    let server = Server::start(&folder, &config);
    let address = server.address();
    let before = post_token(address, &key).expect("answer");

    let (status, _, stderr) = run(twilio_token()
        .current_dir(&folder)
        .args(["revoke", "identity", "alice", "--config"])
        .arg(&config));
    assert_eq!(status, 0, "{stderr}");
    thread::sleep(Duration::from_millis(2200));
    let after = post_token(address, &key).expect("answer");
    let (status, _, stderr) = run(twilio_token()
        .current_dir(&folder)
        .args(["revoke", "remove", "identity", "alice", "--config"])
        .arg(&config));
    assert_eq!(status, 0, "{stderr}");
    thread::sleep(Duration::from_millis(2200));
    let lifted = post_token(address, &key).expect("answer");

    assert_eq!(before.0, 200, "{}", before.1);
    assert_eq!(after.0, 403, "{}", after.1);
    let body: Value = serde_json::from_str(&after.1).expect("JSON");
    assert_eq!(body["error"]["code"], "identity_revoked");
    assert_eq!(lifted.0, 200, "{}", lifted.1);
}
