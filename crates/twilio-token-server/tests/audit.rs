//! The audit log over a real loopback socket. Every token issued and every request rejected gets
//! a record with the right fields and without tokens or secrets, in SQLite, PostgreSQL and JSON
//! lines. While PostgreSQL is down requests get 503, and they succeed again without a restart
//! once it is back. Fail-open mode issues tokens during the outage.

mod common;
#[path = "support/postgres.rs"]
mod pg;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use common::{
    API_KEY_SID, GeneratedKeys, SECRET, TestServer, config_text, expect_error, header, state_from,
    unix_now,
};
use serde_json::{Value, json};
use twilio_token_server::audit::stdout::StdoutSink;
use twilio_token_server::audit::{
    AuditLog, AuditQuery, AuditRecord, Outcome, query_postgres, query_sqlite,
};
use twilio_token_server::issue::TokenResponse;

/// Returns a new empty folder for one test under Cargo's scratch folder.
fn scratch_folder(name: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("audit")
        .join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("scratch folder created");
    folder
}

/// Starts the standard test server with `audit` as its `[audit]` section.
async fn start_with_audit(keys: GeneratedKeys, audit: &str) -> TestServer {
    let text = format!("{}\n[audit]\n{audit}\n", config_text(&keys, ""));
    let state = state_from(&text);
    state.audit.start().expect("the audit log opens");
    TestServer::start_state(keys.keys, state).await
}

/// A token response with its request id.
struct Received {
    request_id: String,
    body: TokenResponse,
}

async fn expect_issued(response: reqwest::Response) -> Received {
    let request_id = header(response.headers(), "x-request-id");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body is readable");
    assert_eq!(status, 200, "status; body: {text}");
    Received {
        request_id,
        body: serde_json::from_str(&text).expect("token response"),
    }
}

/// Returns the `jti` claim of a token, read from its payload.
fn jti_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("token has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("payload is base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("payload is JSON");
    claims["jti"].as_str().expect("jti is a string").to_owned()
}

fn record_for<'a>(records: &'a [AuditRecord], request_id: &str) -> &'a AuditRecord {
    let matching: Vec<&AuditRecord> = records
        .iter()
        .filter(|record| record.request_id == request_id)
        .collect();
    assert_eq!(matching.len(), 1, "one record for request {request_id}");
    matching[0]
}

/// Sends the requests of the field checks and returns (issued token, request ids of the
/// rejections: no credentials, wrong key, no rule, unknown field, TTL too long).
async fn send_mixed_requests(server: &TestServer) -> (Received, [String; 5]) {
    let issued = expect_issued(
        server
            .post_token(
                &server.keys.actor,
                json!({
                    "identity": "user-ann", "grants": ["chat"], "ttl": 900
                }),
            )
            .await,
    )
    .await;

    let anonymous = server
        .client
        .post(server.url("/token"))
        .json(&json!({}))
        .send()
        .await
        .expect("response");
    let anonymous = expect_error(anonymous, 401, "missing_credentials").await;
    let wrong_key = expect_error(
        server
            .post_token("ttk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", json!({}))
            .await,
        401,
        "invalid_api_key",
    )
    .await;
    let no_rule = expect_error(
        server.post_token(&server.keys.stranger, json!({})).await,
        403,
        "no_matching_rule",
    )
    .await;
    let unknown_field = expect_error(
        server
            .post_token(&server.keys.backend, json!({"colour": "red"}))
            .await,
        400,
        "unknown_field",
    )
    .await;
    let long_ttl = expect_error(
        server
            .get_token(&server.keys.actor, "identity=user-bob&ttl=99999")
            .await,
        403,
        "ttl_not_allowed",
    )
    .await;
    let ids = [anonymous, wrong_key, no_rule, unknown_field, long_ttl]
        .map(|reply| header(&reply.headers, "x-request-id"));
    (issued, ids)
}

/// Checks the records of [`send_mixed_requests`].
fn check_mixed_records(records: &[AuditRecord], issued: &Received, refused: &[String; 5]) {
    let record = record_for(records, &issued.request_id);
    assert_eq!(record.outcome, Outcome::Issued);
    assert_eq!(record.status, 200);
    assert_eq!(record.reason, None);
    assert_eq!(record.identity.as_deref(), Some("user-ann"));
    assert_eq!(record.subject.as_deref(), Some("actor"));
    assert_eq!(record.auth_method.as_deref(), Some("api_key"));
    assert_eq!(record.profile.as_deref(), Some("default"));
    assert_eq!(record.grants, ["chat"]);
    assert_eq!(record.ttl, Some(900));
    assert_eq!(record.time, issued.body.server_time);
    assert_eq!(
        record.jti.as_deref(),
        Some(jti_of(&issued.body.token).as_str())
    );
    assert_eq!(
        record.jti.as_deref(),
        Some(format!("{API_KEY_SID}-{}", issued.body.server_time).as_str())
    );
    assert_eq!(record.client_addr.as_deref(), Some("127.0.0.1"));

    let [anonymous, wrong_key, no_rule, unknown_field, long_ttl] = refused;
    let expected = [
        (anonymous, 401, "missing_credentials", None, None),
        (wrong_key, 401, "invalid_api_key", None, None),
        (
            no_rule,
            403,
            "no_matching_rule",
            Some("stranger"),
            Some("stranger"),
        ),
        (unknown_field, 400, "unknown_field", None, None),
        (
            long_ttl,
            403,
            "ttl_not_allowed",
            Some("user-bob"),
            Some("actor"),
        ),
    ];
    for (request_id, status, reason, identity, subject) in expected {
        let record = record_for(records, request_id);
        assert_eq!(record.outcome, Outcome::Refused, "{reason}");
        assert_eq!(record.status, status, "{reason}");
        assert_eq!(record.reason.as_deref(), Some(reason));
        assert_eq!(record.identity.as_deref(), identity, "{reason}");
        assert_eq!(record.subject.as_deref(), subject, "{reason}");
        let method = subject.map(|_| "api_key");
        assert_eq!(record.auth_method.as_deref(), method, "{reason}");
        assert_eq!(record.profile, None, "{reason}");
        assert!(record.grants.is_empty(), "{reason}");
        assert_eq!(record.ttl, None, "{reason}");
        assert_eq!(record.jti, None, "{reason}");
        assert_eq!(record.client_addr.as_deref(), Some("127.0.0.1"));
        assert!(record.time.abs_diff(unix_now()) < 60, "{reason}: time");
    }
}

/// Asserts that none of `secrets` occurs in the bytes of the files in `folder`.
fn assert_folder_lacks(folder: &Path, secrets: &[&str]) {
    let mut checked = 0;
    for entry in std::fs::read_dir(folder).expect("folder is readable") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("file is readable");
        for secret in secrets {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes()),
                "{} contains a secret",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "the database and its WAL were checked");
}

#[tokio::test]
async fn sqlite_records_every_outcome() {
    let folder = scratch_folder("sqlite_fields");
    let keys = GeneratedKeys::new();
    let all_keys = keys.keys.clone();
    let database = folder.join("audit.sqlite3");
    let server = start_with_audit(
        keys,
        &format!("sink = \"sqlite\"\npath = \"{}\"", database.display()),
    )
    .await;

    let (issued, refused) = send_mixed_requests(&server).await;
    let acting = expect_error(
        server
            .post_token(&server.keys.backend, json!({"identity": "admin"}))
            .await,
        403,
        "identity_not_allowed",
    )
    .await;
    let records = query_sqlite(&database, &AuditQuery::default()).expect("the log is readable");

    assert_eq!(records.len(), 7, "{records:#?}");
    check_mixed_records(&records, &issued, &refused);
    let record = record_for(&records, &header(&acting.headers, "x-request-id"));
    assert_eq!(record.reason.as_deref(), Some("identity_not_allowed"));
    assert_eq!(
        record.identity.as_deref(),
        Some("admin"),
        "the identity asked for"
    );
    assert_eq!(record.subject.as_deref(), Some("backend"));
    assert_folder_lacks(
        &folder,
        &[
            &issued.body.token,
            SECRET,
            &all_keys.actor,
            &all_keys.backend,
            &all_keys.stranger,
        ],
    );
    server.stop().await;
}

#[tokio::test]
async fn sqlite_query_filters_identity_outcome_time() {
    let folder = scratch_folder("sqlite_query");
    let database = folder.join("audit.sqlite3");
    let server = start_with_audit(
        GeneratedKeys::new(),
        &format!("path = \"{}\"", database.display()),
    )
    .await;
    let (issued, _) = send_mixed_requests(&server).await;
    server.stop().await;

    let by_identity = AuditQuery {
        identity: Some("user-ann".into()),
        ..AuditQuery::default()
    };
    let records = query_sqlite(&database, &by_identity).expect("readable");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].request_id, issued.request_id);

    let refused = AuditQuery {
        outcome: Some(Outcome::Refused),
        ..AuditQuery::default()
    };
    assert_eq!(
        query_sqlite(&database, &refused).expect("readable").len(),
        5
    );

    let future = AuditQuery {
        since: Some(unix_now() + 3600),
        ..AuditQuery::default()
    };
    assert!(
        query_sqlite(&database, &future)
            .expect("readable")
            .is_empty()
    );
    let past = AuditQuery {
        until: Some(issued.body.server_time.saturating_sub(3600)),
        ..AuditQuery::default()
    };
    assert!(query_sqlite(&database, &past).expect("readable").is_empty());
    let window = AuditQuery {
        since: Some(issued.body.server_time),
        until: Some(unix_now() + 1),
        limit: Some(2),
        ..AuditQuery::default()
    };
    let newest = query_sqlite(&database, &window).expect("readable");
    assert_eq!(newest.len(), 2, "limit keeps the newest records");
    assert_eq!(newest[1].reason.as_deref(), Some("ttl_not_allowed"));
}

/// Runs a PostgreSQL query on a thread outside the test's runtime, because the synchronous
/// client starts a runtime of its own.
fn postgres_records(url: &str, query: AuditQuery) -> Vec<AuditRecord> {
    let url = url.to_owned();
    std::thread::spawn(move || query_postgres(&url, &query))
        .join()
        .expect("query thread")
        .expect("the PostgreSQL log is readable")
}

#[tokio::test]
async fn postgres_records_every_outcome() {
    let postgres = pg::Postgres::start("fields");
    let generated = GeneratedKeys::new();
    let keys = generated.keys.clone();
    let server = start_with_audit(
        generated,
        &format!("sink = \"postgres\"\nurl = \"{}\"", postgres.url()),
    )
    .await;

    let (issued, refused) = send_mixed_requests(&server).await;
    let records = postgres_records(&postgres.url(), AuditQuery::default());

    assert_eq!(records.len(), 6, "{records:#?}");
    check_mixed_records(&records, &issued, &refused);
    let rows = serde_json::to_string(&records).expect("JSON");
    for secret in [
        &issued.body.token,
        SECRET,
        &keys.actor,
        &keys.backend,
        &keys.stranger,
    ] {
        assert!(!rows.contains(secret), "a record contains a secret");
    }
    server.stop().await;
}

#[tokio::test]
async fn postgres_down_fails_closed_then_recovers() {
    let mut postgres = pg::Postgres::start("fail_closed");
    let server = start_with_audit(
        GeneratedKeys::new(),
        &format!("sink = \"postgres\"\nurl = \"{}\"", postgres.url()),
    )
    .await;
    let before = expect_issued(server.post_token(&server.keys.backend, json!({})).await).await;

    postgres.stop();
    let reply = expect_error(
        server.post_token(&server.keys.backend, json!({})).await,
        503,
        "audit_unavailable",
    )
    .await;
    assert_eq!(
        reply.message,
        "the audit log cannot be written, so no token is issued: try again later"
    );
    // A rejection that cannot be recorded gets 503 too, so no response escapes the log.
    expect_error(
        server.post_token(&server.keys.stranger, json!({})).await,
        503,
        "audit_unavailable",
    )
    .await;

    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("response");
    assert_eq!(ready.status().as_u16(), 503);
    let body: Value = ready.json().await.expect("JSON");
    assert_eq!(body["failing"], json!(["audit_log"]));

    postgres.resume();
    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("response");
    assert_eq!(
        ready.status().as_u16(),
        200,
        "the readiness probe reconnects"
    );
    let after = expect_issued(server.post_token(&server.keys.backend, json!({})).await).await;

    let records = postgres_records(&postgres.url(), AuditQuery::default());
    let ids: Vec<&str> = records.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, [before.request_id.as_str(), after.request_id.as_str()]);
    assert_eq!(
        records[1].jti.as_deref(),
        Some(jti_of(&after.body.token).as_str())
    );
    server.stop().await;
}

#[tokio::test]
async fn postgres_down_fail_open_issues_token() {
    let mut postgres = pg::Postgres::start("fail_open");
    let server = start_with_audit(
        GeneratedKeys::new(),
        &format!(
            "sink = \"postgres\"\nurl = \"{}\"\nfail_open = true",
            postgres.url()
        ),
    )
    .await;
    postgres.stop();

    let issued = expect_issued(server.post_token(&server.keys.backend, json!({})).await).await;
    assert_eq!(issued.body.identity, "backend-svc");
    expect_error(
        server.post_token(&server.keys.stranger, json!({})).await,
        403,
        "no_matching_rule",
    )
    .await;
    server.stop().await;
}

#[test]
fn postgres_unreachable_start_fails() {
    let postgres = pg::Postgres::start("unreachable");
    let url = format!(
        "postgresql://postgres:hunter22@127.0.0.1:{}/postgres?connect_timeout=2",
        postgres.port()
    );
    drop(postgres);
    let keys = GeneratedKeys::new();
    let text = format!(
        "{}\n[audit]\nsink = \"postgres\"\nurl = \"{url}\"\n",
        config_text(&keys, "")
    );
    let state = state_from(&text);

    let error = state
        .audit
        .start()
        .expect_err("nothing listens on the port");
    assert_eq!(error.sink, "postgres");
    assert!(
        error.message.starts_with("failed to connect: "),
        "{}",
        error.message
    );
    assert!(!error.message.contains("hunter22"), "{}", error.message);
    assert!(!format!("{:?}", state.audit).contains("hunter22"));
    assert!(state.audit.describe().contains("postgres:***@127.0.0.1"));
}

/// A writer whose bytes the test can read while the sink owns it.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn stdout_sink_writes_json_lines() {
    let keys = GeneratedKeys::new();
    let all_keys = keys.keys.clone();
    let mut state = state_from(&format!(
        "{}\n[audit]\nsink = \"stdout\"\n",
        config_text(&keys, "")
    ));
    let buffer = SharedBuffer::default();
    state.audit = Arc::new(AuditLog::with_sink(
        Box::new(StdoutSink::with_writer(Box::new(buffer.clone()))),
        false,
    ));
    let server = TestServer::start_state(keys.keys, state).await;

    let (issued, refused) = send_mixed_requests(&server).await;
    server.stop().await;

    let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("UTF-8");
    for secret in [
        &issued.body.token,
        SECRET,
        &all_keys.actor,
        &all_keys.backend,
    ] {
        assert!(!text.contains(secret), "a line contains a secret");
    }
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 6);
    let records: Vec<AuditRecord> = lines
        .iter()
        .map(|line| serde_json::from_value(line.clone()).expect("a record"))
        .collect();
    check_mixed_records(&records, &issued, &refused);
    let first = lines
        .iter()
        .find(|line| line["request_id"] == issued.request_id.as_str())
        .expect("issued line");
    let mut keys: Vec<&str> = first
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "auth_method",
            "client_addr",
            "grants",
            "identity",
            "jti",
            "outcome",
            "profile",
            "reason",
            "request_id",
            "status",
            "subject",
            "time",
            "ttl"
        ]
    );
}

#[tokio::test]
async fn refusal_after_authentication_names_requested_identity() {
    let folder = scratch_folder("requested_identity");
    let keys = GeneratedKeys::new();
    let database = folder.join("audit.sqlite3");
    let text = format!(
        "{}\n[rate_limit]\nper_identity = {{ burst = 1, per_minute = 1 }}\n\n\
         [audit]\nsink = \"sqlite\"\npath = \"{}\"\n",
        config_text(&keys, ""),
        database.display()
    );
    let state = state_from(&text);
    state.audit.start().expect("the audit log opens");
    let server = TestServer::start_state(keys.keys, state).await;

    let first = server
        .post_token(&server.keys.actor, json!({"identity": "user-7"}))
        .await;
    assert_eq!(first.status(), 200);
    let limited = expect_error(
        server
            .post_token(&server.keys.actor, json!({"identity": "user-7"}))
            .await,
        429,
        "rate_limited",
    )
    .await;
    let records = query_sqlite(&database, &AuditQuery::default()).expect("the log is readable");

    let record = record_for(&records, &header(&limited.headers, "x-request-id"));
    assert_eq!(record.reason.as_deref(), Some("rate_limited"));
    assert_eq!(record.identity.as_deref(), Some("user-7"));
    assert_eq!(record.subject.as_deref(), Some("actor"));
    server.stop().await;
}

#[tokio::test]
async fn refusal_keeps_no_invalid_identity() {
    let folder = scratch_folder("invalid_identity");
    let keys = GeneratedKeys::new();
    let database = folder.join("audit.sqlite3");
    let text = format!(
        "{}\n[auth.trusted_header]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n\
         [audit]\nsink = \"sqlite\"\npath = \"{}\"\n",
        config_text(&keys, "").replace(
            "order = [\"api_key\"]",
            "order = [\"trusted_header\", \"api_key\"]"
        ),
        database.display()
    );
    let state = state_from(&text);
    state.audit.start().expect("the audit log opens");
    let server = TestServer::start_state(keys.keys, state).await;

    // A tab is a control character, which the identity rules reject.
    let response = server
        .client
        .post(server.url("/token"))
        .header("x-forwarded-user", "user-7\tissued")
        .json(&json!({}))
        .send()
        .await
        .expect("response");
    let rejected = expect_error(response, 400, "invalid_identity").await;
    let records = query_sqlite(&database, &AuditQuery::default()).expect("the log is readable");

    let record = record_for(&records, &header(&rejected.headers, "x-request-id"));
    assert_eq!(record.reason.as_deref(), Some("invalid_identity"));
    assert_eq!(record.identity, None);
    assert_eq!(record.subject.as_deref(), Some("user-7issued"));
    assert_eq!(record.auth_method.as_deref(), Some("trusted_header"));
    server.stop().await;
}
