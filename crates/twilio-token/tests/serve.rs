//! Tests of `serve`, `config check` and `api-key` through the built binary: a real server on a
//! loopback port, real HTTP requests and real signals.
//!
//! The servers listen on 127.0.0.1 port 0 and the tests read the port from the JSON
//! `listening` log line, so parallel tests never collide on a port.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{
    ACCOUNT_SID, API_KEY_SID, SECRET, SERVICE_SID, assert_secret_absent, run, twilio_token,
};

/// How long a server may take to start or to report a line on stderr.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A server started by a test, killed when the test ends however it ends.
struct Server {
    child: Child,
    lines: Receiver<String>,
    /// Every stderr line read so far.
    stderr: Vec<String>,
}

impl Server {
    /// Starts `serve` with `args` in `folder`, adding the variables in `env`.
    fn start(folder: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = serve_command(folder);
        command.arg("serve").args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
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
        Server {
            child,
            lines,
            stderr: Vec::new(),
        }
    }

    /// Reads stderr until a line satisfies `found`, and returns that line.
    fn wait_for_line(&mut self, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if found(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no expected line within {START_TIMEOUT:?}; stderr: {:?}",
                        self.stderr
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "stderr closed before the expected line; stderr: {:?}",
                        self.stderr
                    )
                }
            }
        }
    }

    /// Waits for the JSON `listening` log line and returns the address it names.
    fn address(&mut self) -> SocketAddr {
        let line = self.wait_for_line(|line| {
            serde_json::from_str::<Value>(line).is_ok_and(|event| event["message"] == "listening")
        });
        let event: Value = serde_json::from_str(&line).expect("log line is JSON");
        event["address"]
            .as_str()
            .expect("listening event has an address")
            .parse()
            .expect("address parses")
    }

    /// Sends the signal `name`, such as `TERM`, through the system's `kill`.
    fn signal(&self, name: &str) {
        let status = StdCommand::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the server to exit, reads the rest of its stderr, and returns its
    /// status and how long it took to exit.
    fn wait_for_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("server status") {
                let elapsed = started.elapsed();
                self.stderr.extend(self.lines.iter());
                return (status, elapsed);
            }
            assert!(
                started.elapsed() < limit,
                "server still running after {limit:?}; stderr: {:?}",
                self.stderr
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns every stderr line read so far as one text.
    fn stderr_text(&self) -> String {
        self.stderr.join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns the binary in `folder` with no `TWILIO_*` variables and `RUST_LOG=info`.
fn serve_command(folder: &Path) -> StdCommand {
    let mut command = StdCommand::new(env!("CARGO_BIN_EXE_twilio-token"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TWILIO_") {
            command.env_remove(name);
        }
    }
    command.env("RUST_LOG", "info").current_dir(folder);
    command
}

/// Creates an empty folder for one test under Cargo's scratch folder.
fn scratch_folder(name: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("serve")
        .join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("scratch folder created");
    folder
}

/// Returns the Twilio variables of a complete set of placeholder credentials.
fn credentials() -> [(&'static str, &'static str); 3] {
    [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY", API_KEY_SID),
        ("TWILIO_API_SECRET", SECRET),
    ]
}

/// Generates an API key for identity `alice` and returns the key and the configuration block.
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

/// Writes a configuration with the given `[server]` lines and `[[auth.api_keys]]` block, a
/// profile whose secret is in `TWILIO_API_SECRET`, and a Video rule for `alice`.
fn write_config(folder: &Path, key_block: &str, server_lines: &str) -> PathBuf {
    let text = format!(
        "[server]\n{server_lines}\n\n{key_block}\n\
         [[profiles]]\naccount_sid = \"{ACCOUNT_SID}\"\n\
         api_keys = [{{ sid = \"{API_KEY_SID}\", secret_env = \"TWILIO_API_SECRET\" }}]\n\n\
         [[policy.rules]]\nidentities = [\"alice\"]\ngrants = {{ video = {{}} }}\n"
    );
    let path = folder.join("config.toml");
    std::fs::write(&path, text).expect("configuration written");
    path
}

/// Starts a server with an API key, returning it, its address and the key.
fn start_with_key(name: &str, grace_secs: u64) -> (Server, SocketAddr, String) {
    start_with_key_and(name, &format!("shutdown_grace_secs = {grace_secs}"))
}

/// Starts a server with an API key and the given `[server]` lines, returning it, its address
/// and the key.
fn start_with_key_and(name: &str, server_lines: &str) -> (Server, SocketAddr, String) {
    let folder = scratch_folder(name);
    let (key, block) = generate_key();
    let config = write_config(&folder, &block, server_lines);
    let mut server = Server::start(
        &folder,
        &[
            "--config",
            config.to_str().expect("UTF-8 path"),
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
        &[("TWILIO_API_SECRET", SECRET)],
    );
    let address = server.address();
    (server, address, key)
}

/// Builds the head of a `POST /token` request for the JSON `body`, which is sent separately.
fn token_request_head(address: SocketAddr, key: Option<&str>, body: &str) -> String {
    let authorization = key
        .map(|key| format!("Authorization: Bearer {key}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /token HTTP/1.1\r\nHost: {address}\r\n{authorization}\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
}

/// Reads an HTTP/1.1 response to the end and returns its status code and body.
fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Sends `POST /token` with an empty JSON object and returns the status code and body.
fn post_token(address: SocketAddr, key: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connected");
    stream
        .set_read_timeout(Some(START_TIMEOUT))
        .expect("timeout set");
    let request = format!("{}{{}}", token_request_head(address, key, "{}"));
    stream.write_all(request.as_bytes()).expect("request sent");
    read_response(&mut stream)
}

#[cfg(unix)]
#[test]
fn serve_issues_token_and_stops_on_sigterm() {
    let (mut server, address, key) = start_with_key("issues-token", 5);

    let (status, body) = post_token(address, Some(&key));
    assert_eq!(status, 200, "{body}");
    let response: Value = serde_json::from_str(&body).expect("body is JSON");
    assert_eq!(response["identity"], "alice");
    let token = response["token"].as_str().expect("token is a string");
    assert_eq!(token.split('.').count(), 3, "{token}");

    let (status, body) = post_token(address, None);
    assert_eq!(status, 401, "{body}");

    server.signal("TERM");
    let (status, elapsed) = server.wait_for_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let logs = server.stderr_text();
    assert!(logs.contains("SIGTERM received"), "{logs}");
    assert!(logs.contains("\"stopped\""), "{logs}");
    assert_secret_absent(&logs, &key);
    assert_secret_absent(&logs, token);
    assert_secret_absent(&logs, SECRET);
}

#[test]
fn serve_closes_silent_connection_after_configured_header_time() {
    let (_server, address, key) = start_with_key_and("header-time", "header_read_timeout_secs = 1");

    // A client that connects and sends nothing is dropped after the configured second, well
    // before the 10-second default.
    let mut silent = TcpStream::connect(address).expect("connected");
    silent
        .set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout set");
    let started = Instant::now();
    let mut buffer = Vec::new();
    let read = silent.read_to_end(&mut buffer);
    let elapsed = started.elapsed();

    assert!(
        read.is_ok(),
        "the server did not close the connection: {read:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    // The server still answers clients that send their request.
    let (status, body) = post_token(address, Some(&key));
    assert_eq!(status, 200, "{body}");
}

#[cfg(unix)]
#[test]
fn serve_stops_on_sigint() {
    let (mut server, _, _) = start_with_key("sigint", 5);

    server.signal("INT");

    let (status, _) = server.wait_for_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    assert!(server.stderr_text().contains("SIGINT received"));
}

#[cfg(unix)]
#[test]
fn serve_finishes_request_in_flight_after_sigterm() {
    let (mut server, address, key) = start_with_key("in-flight", 10);
    let body = "{}";
    let mut stream = TcpStream::connect(address).expect("connected");
    stream
        .set_read_timeout(Some(START_TIMEOUT))
        .expect("timeout set");
    stream
        .write_all(token_request_head(address, Some(&key), body).as_bytes())
        .expect("head sent");
    stream
        .write_all(&body.as_bytes()[..1])
        .expect("half the body sent");
    // Give the server time to read the head, so the request is in flight.
    thread::sleep(Duration::from_millis(300));

    server.signal("TERM");
    server.wait_for_line(|line| line.contains("SIGTERM received"));
    stream
        .write_all(&body.as_bytes()[1..])
        .expect("body finished");

    let (status, response) = read_response(&mut stream);
    assert_eq!(status, 200, "{response}");
    let (status, _) = server.wait_for_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    assert!(!server.stderr_text().contains("grace period ended"));
}

#[cfg(unix)]
#[test]
fn serve_stops_stalled_request_after_grace() {
    let (mut server, address, key) = start_with_key("grace", 1);
    let mut stream = TcpStream::connect(address).expect("connected");
    stream
        .write_all(token_request_head(address, Some(&key), "{}").as_bytes())
        .expect("head sent");
    thread::sleep(Duration::from_millis(300));

    server.signal("TERM");

    let (status, elapsed) = server.wait_for_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(
        server.stderr_text().contains("grace period ended"),
        "{}",
        server.stderr_text()
    );
}

#[test]
fn serve_invalid_config_exits_2() {
    let folder = scratch_folder("invalid");
    let config = folder.join("config.toml");
    std::fs::write(&config, "[[profiles]]\naccount_sid = \"AC123\"\n").expect("written");

    let output = serve_command(&folder)
        .args(["serve", "--config", "config.toml"])
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: profiles[0] (default).account_sid: "),
        "{stderr}"
    );
}

#[test]
fn serve_invalid_rust_log_exits_2() {
    let folder = scratch_folder("rust-log");

    let output = serve_command(&folder)
        .args(["serve", "--demo"])
        .env("RUST_LOG", "info,=[")
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: RUST_LOG is not a valid log filter"),
        "{stderr}"
    );
}

#[test]
fn serve_non_loopback_without_auth_rejected() {
    let folder = scratch_folder("exposed-no-auth");

    let output = serve_command(&folder)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .envs(credentials())
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: 0.0.0.0:0 is not a loopback address"),
        "{stderr}"
    );
    assert!(stderr.contains("no authentication provider"), "{stderr}");
    assert!(stderr.contains("--allow-insecure"), "{stderr}");
}

#[test]
fn serve_non_loopback_demo_rejected() {
    let folder = scratch_folder("exposed-demo");

    let output = serve_command(&folder)
        .args(["serve", "--demo", "--listen", "0.0.0.0:0"])
        .output()
        .expect("binary runs");

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--demo"), "{stderr}");
    assert!(stderr.contains("--allow-insecure"), "{stderr}");
}

#[test]
fn serve_allow_insecure_starts_with_warning() {
    let folder = scratch_folder("allow-insecure");

    let mut server = Server::start(
        &folder,
        &[
            "--demo",
            "--listen",
            "0.0.0.0:0",
            "--allow-insecure",
            "--log-format",
            "json",
        ],
        &[],
    );

    let address = server.address();
    assert!(address.ip().is_unspecified(), "{address}");
    let logs = server.stderr_text();
    assert!(logs.contains("\"WARN\""), "{logs}");
    assert!(logs.contains("--allow-insecure"), "{logs}");
}

#[test]
fn serve_demo_banner_warns_of_placeholders() {
    let folder = scratch_folder("demo");

    let mut server = Server::start(&folder, &["--demo", "--listen", "127.0.0.1:0"], &[]);

    server.wait_for_line(|line| line.contains("PLACEHOLDER CREDENTIALS"));
    server.wait_for_line(|line| line.contains("TWILIO_CHAT_SERVICE_SID"));
    let banner = server.stderr_text();
    assert!(banner.contains("demo mode"), "{banner}");
    assert!(banner.contains("POST http://127.0.0.1:"), "{banner}");
    assert!(
        banner.contains("demo page: open http://127.0.0.1:"),
        "{banner}"
    );
    assert!(banner.contains("will NOT accept them"), "{banner}");
    for variable in ["TWILIO_ACCOUNT_SID", "TWILIO_API_KEY", "TWILIO_API_SECRET"] {
        assert!(
            banner.contains(variable),
            "{variable} missing from {banner}"
        );
    }
}

#[test]
fn serve_demo_quick_start_issues_token() {
    let folder = scratch_folder("demo-quick-start");
    let mut server = Server::start(&folder, &["--demo", "--listen", "127.0.0.1:0"], &[]);
    let line = server.wait_for_line(|line| line.contains("sign in as demo with password"));
    let password = line
        .split("sign in as demo with password ")
        .nth(1)
        .expect("password follows")
        .trim()
        .to_owned();
    let banner = server.stderr_text();
    let address: SocketAddr = banner
        .split("POST http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("address in the banner")
        .parse()
        .expect("an address");

    // The README's two commands: sign in, then POST /token with an empty JSON object.
    let login = format!(r#"{{"username":"demo","password":"{password}"}}"#);
    let mut stream = TcpStream::connect(address).expect("connected");
    stream
        .set_read_timeout(Some(START_TIMEOUT))
        .expect("timeout set");
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{login}",
        login.len()
    );
    stream.write_all(request.as_bytes()).expect("login sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("login answered");
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    let cookie = response
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .and_then(|value| value.split(';').next())
        .expect("a session cookie")
        .to_owned();

    let mut stream = TcpStream::connect(address).expect("connected");
    stream
        .set_read_timeout(Some(START_TIMEOUT))
        .expect("timeout set");
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    stream
        .write_all(request.as_bytes())
        .expect("token request sent");
    let (status, body) = read_response(&mut stream);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["identity"], "demo");
    let token = answer["token"].as_str().expect("a token");
    let payload = token.split('.').nth(1).expect("a payload");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    // The demo rule allows every room, so the Video grant names none.
    assert_eq!(claims["grants"]["video"], serde_json::json!({}), "{claims}");
}

/// Sends `GET path` and returns the status code and body.
fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connected");
    stream
        .set_read_timeout(Some(START_TIMEOUT))
        .expect("timeout set");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("request sent");
    read_response(&mut stream)
}

#[test]
fn serve_demo_serves_page() {
    let folder = scratch_folder("demo-page");
    let mut server = Server::start(
        &folder,
        &["--demo", "--listen", "127.0.0.1:0", "--log-format", "json"],
        &[],
    );
    let address = server.address();

    let (status, body) = get(address, "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<title>twilio-token demo</title>"), "{body}");
    let (status, body) = get(address, "/token-client.js");
    assert_eq!(status, 200);
    assert!(body.contains("export class TokenClient"));
}

#[test]
fn serve_without_demo_has_no_page() {
    let (_server, address, _key) = start_with_key("no-demo-page", 5);

    let (status, body) = get(address, "/");

    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"not_found\""), "{body}");
}

#[test]
fn serve_demo_with_real_credentials_names_account() {
    let folder = scratch_folder("demo-real");

    let mut server = Server::start(
        &folder,
        &["--demo", "--listen", "127.0.0.1:0"],
        &credentials(),
    );

    server.wait_for_line(|line| line.contains("profile default: account"));
    let banner = server.stderr_text();
    assert!(banner.contains(ACCOUNT_SID), "{banner}");
    assert!(!banner.contains("PLACEHOLDER"), "{banner}");
    assert_secret_absent(&banner, SECRET);
}

/// A valid configuration with every section, its secret in `TWILIO_API_SECRET`.
const VALID_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:9000"
allowed_origins = ["https://app.example.com"]

[auth]
order = ["api_key"]

[[auth.api_keys]]
name = "billing"
hash = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
may_act_for = "user-*"
groups = ["staff"]

[[profiles]]
name = "main"
account_sid = "AC0123456789abcdef0123456789abcdef"
region = "ie1"
chat_service_sid = "IS00000000000000000000000000000001"
sync_service_sid = "default"

[[profiles.api_keys]]
sid = "SKfedcba9876543210fedcba9876543210"
secret_env = "TWILIO_API_SECRET"

[[policy.rules]]
groups = ["staff"]
profile = "main"
ttl = 600
grants = { chat = {}, sync = {} }

[[policy.rules]]
identities = ["user-*"]
profile = "main"
max_ttl = 7200
grants = { video = { rooms = ["standup-*"] }, voice = { incoming = true } }
"#;

/// Runs `config check` on `text` written to `name` in a scratch folder, with the placeholder
/// secret set, and returns the status, stdout and stderr.
fn config_check(name: &str, text: &str, json: bool) -> (i32, String, String) {
    let folder = scratch_folder(&format!("config-check-{name}"));
    std::fs::write(folder.join(name), text).expect("configuration written");
    let mut command = twilio_token();
    command
        .current_dir(&folder)
        .args(["config", "check", "--config", name])
        .env("TWILIO_API_SECRET", SECRET);
    if json {
        command.arg("--json");
    }
    run(&mut command)
}

#[test]
fn config_check_valid_toml_snapshot() {
    let (status, stdout, stderr) = config_check("valid.toml", VALID_CONFIG, false);

    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stderr, "");
    assert_secret_absent(&stdout, SECRET);
    assert!(!stdout.contains("0123456789abcdef0123456789abcdef0123456789abcdef"));
    toml::from_str::<toml::Table>(&stdout).expect("output is TOML");
    insta::assert_snapshot!("config_check_valid", stdout);
}

#[test]
fn config_check_json_hides_secret() {
    let (status, stdout, stderr) = config_check("valid-json.toml", VALID_CONFIG, true);

    assert_eq!(status, 0, "{stderr}");
    assert_secret_absent(&stdout, SECRET);
    let view: Value = serde_json::from_str(&stdout).expect("output is JSON");
    let key = &view["profiles"][0]["api_keys"][0];
    assert_eq!(key["secret_env"], "TWILIO_API_SECRET");
    assert_eq!(key["secret"], "set");
    assert_eq!(view["auth"]["providers"], serde_json::json!(["api_key"]));
    assert_eq!(view["auth"]["api_keys"][0]["hash"], "sha256:0123456789ab…");
    assert_eq!(view["policy"]["rules"][0]["max_ttl"], 600);
    assert_eq!(view["policy"]["rules"][1]["ttl"], 3600);
    assert_eq!(view["policy"]["rules"][1]["max_ttl"], 7200);
}

#[test]
fn config_check_shows_limits_with_redis_password_hidden() {
    let text = format!(
        "{VALID_CONFIG}\n[rate_limit]\nstore = \"redis\"\n\
         redis_url = \"redis://:FAKEredisPassword@127.0.0.1:6379/0\"\n\
         trusted_proxies = [\"10.0.0.0/8\"]\nper_identity = {{ burst = 5, per_minute = 30 }}\n\n\
         [revocation]\nstore = \"redis\"\n\
         redis_url = \"redis://user:FAKEredisPassword@127.0.0.1:6379/1\"\n\n\
         [metrics]\nlisten = \"127.0.0.1:9090\"\n"
    );
    let (status, stdout, stderr) = config_check("limits.toml", &text, true);

    assert_eq!(status, 0, "{stderr}");
    assert_secret_absent(&stdout, "FAKEredisPassword");
    let view: Value = serde_json::from_str(&stdout).expect("output is JSON");
    let limits = &view["rate_limit"];
    assert_eq!(limits["store"], "redis");
    assert_eq!(limits["redis_url"], "redis://:***@127.0.0.1:6379/0");
    assert_eq!(limits["on_redis_error"], "local");
    assert_eq!(limits["trusted_proxies"], serde_json::json!(["10.0.0.0/8"]));
    assert_eq!(
        limits["per_identity"],
        serde_json::json!({ "burst": 5, "per_minute": 30 })
    );
    assert_eq!(
        view["revocation"]["redis_url"],
        "redis://user:***@127.0.0.1:6379/1"
    );
    assert_eq!(view["revocation"]["refresh_secs"], 5);
    assert_eq!(view["metrics"]["listen"], "127.0.0.1:9090");
}

#[test]
fn config_check_without_auth_on_network_warns() {
    let text = format!(
        "[server]\nlisten = \"0.0.0.0:9000\"\n\n\
         [[profiles]]\naccount_sid = \"{ACCOUNT_SID}\"\n\
         api_keys = [{{ sid = \"{API_KEY_SID}\", secret_env = \"TWILIO_API_SECRET\" }}]\n"
    );

    let (status, _, stderr) = config_check("exposed.toml", &text, false);

    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.starts_with("warning: server.listen 0.0.0.0:9000"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-insecure"), "{stderr}");
}

#[test]
fn config_check_invalid_files_name_key() {
    let cases = [
        (
            "bad account SID",
            VALID_CONFIG.replace(
                "AC0123456789abcdef0123456789abcdef",
                "AC0123456789ABCDEF0123456789abcdef",
            ),
            "error: profiles[0] (main).account_sid: ",
        ),
        (
            "unknown profile in a rule",
            VALID_CONFIG.replacen("profile = \"main\"", "profile = \"other\"", 1),
            "error: policy.rules[0].profile: no profile is named \"other\"",
        ),
        (
            "chat without chat_service_sid",
            VALID_CONFIG.replace(
                "chat_service_sid = \"IS00000000000000000000000000000001\"\n",
                "",
            ),
            "error: policy.rules[0].grants: the rule issues chat but profile \"main\" has no \
             chat_service_sid",
        ),
        (
            "unknown field",
            VALID_CONFIG.replace("[server]\n", "[server]\nlisten_port = 9000\n"),
            "error: invalid.toml: line 3: server.listen_port: unknown field `listen_port`",
        ),
        (
            "wrong type",
            VALID_CONFIG.replacen("ttl = 600", "ttl = \"10m\"", 1),
            "error: invalid.toml: line 29: policy.rules[0].ttl: invalid type: string \"10m\", \
             expected u64",
        ),
        (
            "bad listen",
            VALID_CONFIG.replace("127.0.0.1:9000", "localhost:9000"),
            "error: server.listen: \"localhost:9000\" is not an address and port",
        ),
        (
            "no header read time",
            VALID_CONFIG.replace("[server]\n", "[server]\nheader_read_timeout_secs = 0\n"),
            "error: server.header_read_timeout_secs: must be above zero",
        ),
        (
            "no connections",
            VALID_CONFIG.replace("[server]\n", "[server]\nmax_connections = 0\n"),
            "error: server.max_connections: 0 is out of range: give a number from 1 to 1000000",
        ),
    ];

    for (case, text, expected) in cases {
        let (status, stdout, stderr) = config_check("invalid.toml", &text, false);

        assert_eq!(status, 2, "{case}: {stderr}");
        assert_eq!(stdout, "", "{case}");
        assert!(stderr.starts_with(expected), "{case}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{case}: {stderr}");
    }
}

#[test]
fn config_check_missing_secret_names_variable() {
    let folder = scratch_folder("config-check-secret");
    std::fs::write(folder.join("valid.toml"), VALID_CONFIG).expect("configuration written");

    let (status, _, stderr) = run(twilio_token().current_dir(&folder).args([
        "config",
        "check",
        "--config",
        "valid.toml",
    ]));

    assert_eq!(status, 2);
    assert!(
        stderr.starts_with(
            "error: profiles[0] (main).api_keys[0].secret_env: the environment variable \
             TWILIO_API_SECRET is not set"
        ),
        "{stderr}"
    );
}

#[test]
fn config_check_reads_environment_only() {
    let (status, stdout, stderr) = run(twilio_token()
        .args(["config", "check", "--json"])
        .env("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
        .env("TWILIO_API_KEY", API_KEY_SID)
        .env("TWILIO_API_SECRET", SECRET)
        .env("TWILIO_CHAT_SERVICE_SID", SERVICE_SID));

    assert_eq!(status, 0, "{stderr}");
    assert_secret_absent(&stdout, SECRET);
    let view: Value = serde_json::from_str(&stdout).expect("output is JSON");
    let profile = &view["profiles"][0];
    assert_eq!(profile["name"], "default");
    assert_eq!(profile["chat_service_sid"], SERVICE_SID);
    assert_eq!(profile["api_keys"][0]["secret_env"], "TWILIO_API_SECRET");
}

#[test]
fn api_key_generate_hash_matches_printed_key() {
    let (key, block) = generate_key();

    let (status, hash, stderr) = run(twilio_token()
        .args(["api-key", "hash"])
        .write_stdin(format!("{key}\n")));

    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stderr, "");
    assert!(key.starts_with("ttk_"), "{key}");
    assert!(
        block.contains(&format!("hash = \"{}\"", hash.trim_end())),
        "{block}"
    );
    assert!(!block.contains(&key), "the key is printed only on stdout");
    let parsed: toml::Table = toml::from_str(&block).expect("the block is TOML");
    let entry = &parsed["auth"]["api_keys"][0];
    assert_eq!(entry["name"].as_str(), Some("backend"));
    assert_eq!(entry["identity"].as_str(), Some("alice"));
}

#[test]
fn api_key_generate_writes_pattern_and_groups() {
    let (status, _, block) = run(twilio_token().args([
        "api-key",
        "generate",
        "--name",
        "chat \"backend\"",
        "--may-act-for",
        "user-*",
        "--group",
        "staff",
        "--group",
        "ops",
    ]));

    assert_eq!(status, 0, "{block}");
    let parsed: toml::Table = toml::from_str(&block).expect("the block is TOML");
    let entry = &parsed["auth"]["api_keys"][0];
    assert_eq!(entry["name"].as_str(), Some("chat \"backend\""));
    assert_eq!(entry["may_act_for"].as_str(), Some("user-*"));
    assert_eq!(entry.get("identity"), None);
    assert_eq!(entry["groups"].as_array().map(Vec::len), Some(2), "{block}");
}

#[test]
fn api_key_generate_without_identity_or_pattern_rejected() {
    let (status, stdout, stderr) =
        run(twilio_token().args(["api-key", "generate", "--name", "backend"]));

    assert_eq!(status, 2);
    assert_eq!(stdout, "");
    assert!(stderr.contains("--identity"), "{stderr}");
    assert!(stderr.contains("--may-act-for"), "{stderr}");
}

#[test]
fn api_key_hash_empty_input_rejected() {
    let (status, stdout, stderr) = run(twilio_token().args(["api-key", "hash"]).write_stdin("\n"));

    assert_eq!(status, 2);
    assert_eq!(stdout, "");
    assert!(stderr.starts_with("error: no API key on stdin"), "{stderr}");
}

#[test]
fn help_serve_snapshot() {
    let (status, stdout, stderr) = run(twilio_token().args(["serve", "--help"]));

    assert_eq!(status, 0, "{stderr}");
    insta::assert_snapshot!("help_serve", stdout);
}

#[test]
fn help_config_check_snapshot() {
    let (status, stdout, stderr) = run(twilio_token().args(["config", "check", "--help"]));

    assert_eq!(status, 0, "{stderr}");
    insta::assert_snapshot!("help_config_check", stdout);
}

#[test]
fn help_api_key_generate_snapshot() {
    let (status, stdout, stderr) = run(twilio_token().args(["api-key", "generate", "--help"]));

    assert_eq!(status, 0, "{stderr}");
    insta::assert_snapshot!("help_api_key_generate", stdout);
}
