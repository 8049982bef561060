//! The PostgreSQL audit sink: one table that several replicas share.
//!
//! At start-up each server runs the migrations it is missing, inside a transaction that holds an
//! advisory lock, so replicas starting together migrate once. The applied versions are rows of
//! `twilio_token_audit_schema`. Each batch is one `INSERT … SELECT FROM unnest(…)` statement, so
//! a batch costs one round trip and one commit however many records it has.
//!
//! The client is the synchronous `postgres` crate, which runs its own single-threaded runtime.
//! Call it only from a thread outside any tokio runtime, such as the audit writer thread.
//!
//! NOTE: connections are made without TLS. Connect over a Unix socket or a private network, or
//! through a local TLS proxy, until a TLS connector is added.

use std::str::FromStr as _;
use std::time::Duration;

use postgres::{Client, Config, NoTls, Statement};

use super::{AuditError, AuditRecord, AuditSink};

/// The schema version this build writes: the number of migrations.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// How long a connection attempt may take when the connection string sets no
/// `connect_timeout`. It bounds how long requests wait while the database is down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock key held while migrating: the ASCII bytes of `twtokaud`.
const MIGRATION_LOCK: i64 = 0x7477_746f_6b61_7564;

/// Schema migrations. Migration `i` moves the database from version `i` to `i + 1`. Append new
/// ones, and never edit one that has shipped.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE twilio_token_audit (
        id BIGSERIAL PRIMARY KEY,
        time TIMESTAMPTZ NOT NULL,
        request_id TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('issued', 'refused')),
        status INTEGER NOT NULL,
        reason TEXT,
        identity TEXT,
        subject TEXT,
        auth_method TEXT,
        profile TEXT,
        grants TEXT NOT NULL DEFAULT '',
        ttl BIGINT,
        jti TEXT,
        client_addr TEXT
    );
    CREATE INDEX twilio_token_audit_by_time ON twilio_token_audit (time);
    CREATE INDEX twilio_token_audit_by_identity ON twilio_token_audit (identity, time);
"];

const INSERT: &str = "INSERT INTO twilio_token_audit (time, request_id, outcome, status, reason, \
     identity, subject, auth_method, profile, grants, ttl, jti, client_addr) \
     SELECT to_timestamp(u.time), u.request_id, u.outcome, u.status, u.reason, u.identity, \
     u.subject, u.auth_method, u.profile, u.grants, u.ttl, u.jti, u.client_addr \
     FROM unnest($1::int8[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[], $12::text[], $13::text[]) \
     AS u(time, request_id, outcome, status, reason, identity, subject, auth_method, profile, \
     grants, ttl, jti, client_addr)";

/// Writes audit records to PostgreSQL.
pub struct PostgresSink {
    url: String,
    connection: Option<(Client, Statement)>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("url", &super::mask_password(&self.url))
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl PostgresSink {
    /// Makes a sink for the database at `url`. Nothing is opened until
    /// [`AuditSink::prepare`].
    pub fn new(url: String) -> Self {
        PostgresSink {
            url,
            connection: None,
        }
    }
}

impl AuditSink for PostgresSink {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn prepare(&mut self) -> Result<(), AuditError> {
        if self
            .connection
            .as_mut()
            .is_some_and(|(client, _)| client.is_valid(CONNECT_TIMEOUT).is_ok())
        {
            return Ok(());
        }
        self.connection = None;
        let mut client = connect(&self.url)?;
        migrate(&mut client)?;
        let insert = client
            .prepare(INSERT)
            .map_err(|error| postgres_error("failed to prepare the insert", &error))?;
        self.connection = Some((client, insert));
        Ok(())
    }

    fn write_batch(&mut self, records: &[AuditRecord]) -> Result<(), AuditError> {
        let Some((client, insert)) = self.connection.as_mut() else {
            return Err(AuditError::new("postgres", "not connected"));
        };
        let result = insert_batch(client, insert, records);
        if result.is_err() {
            self.connection = None;
        }
        result
            .map(|_| ())
            .map_err(|error| postgres_error("failed to insert", &error))
    }
}

fn insert_batch(
    client: &mut Client,
    insert: &Statement,
    records: &[AuditRecord],
) -> Result<u64, postgres::Error> {
    let to_i64 = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let times: Vec<i64> = records.iter().map(|record| to_i64(record.time)).collect();
    let request_ids: Vec<&str> = records.iter().map(|r| r.request_id.as_str()).collect();
    let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
    let statuses: Vec<i32> = records.iter().map(|r| i32::from(r.status)).collect();
    let reasons: Vec<Option<&str>> = records.iter().map(|r| r.reason.as_deref()).collect();
    let identities: Vec<Option<&str>> = records.iter().map(|r| r.identity.as_deref()).collect();
    let subjects: Vec<Option<&str>> = records.iter().map(|r| r.subject.as_deref()).collect();
    let methods: Vec<Option<&str>> = records.iter().map(|r| r.auth_method.as_deref()).collect();
    let profiles: Vec<Option<&str>> = records.iter().map(|r| r.profile.as_deref()).collect();
    let grants: Vec<String> = records.iter().map(|r| r.grants.join(",")).collect();
    let ttls: Vec<Option<i64>> = records.iter().map(|r| r.ttl.map(to_i64)).collect();
    let jtis: Vec<Option<&str>> = records.iter().map(|r| r.jti.as_deref()).collect();
    let clients: Vec<Option<&str>> = records.iter().map(|r| r.client_addr.as_deref()).collect();
    client.execute(
        insert,
        &[
            &times,
            &request_ids,
            &outcomes,
            &statuses,
            &reasons,
            &identities,
            &subjects,
            &methods,
            &profiles,
            &grants,
            &ttls,
            &jtis,
            &clients,
        ],
    )
}

/// Parses a connection string, in URL or `key=value` form.
///
/// # Errors
///
/// Returns the parser's error, which does not repeat the connection string.
pub fn parse_config(url: &str) -> Result<Config, postgres::Error> {
    Config::from_str(url)
}

/// Connects to the database at `url`, with [`CONNECT_TIMEOUT`] unless the string sets one.
///
/// # Errors
///
/// Returns an [`AuditError`] without the connection string.
pub fn connect(url: &str) -> Result<Client, AuditError> {
    let mut config =
        parse_config(url).map_err(|error| postgres_error("invalid connection string", &error))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("twilio-token");
    }
    config
        .connect(NoTls)
        .map_err(|error| postgres_error("failed to connect", &error))
}

/// Runs the migrations the database is missing.
fn migrate(client: &mut Client) -> Result<(), AuditError> {
    let failed = |error: postgres::Error| postgres_error("failed to migrate the schema", &error);
    let mut transaction = client.transaction().map_err(failed)?;
    // Without this, each start logs PostgreSQL's notice that the schema table already exists.
    transaction
        .batch_execute("SET LOCAL client_min_messages = warning")
        .map_err(failed)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(failed)?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS twilio_token_audit_schema (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .map_err(failed)?;
    let found: Option<i32> = transaction
        .query_one("SELECT max(version) FROM twilio_token_audit_schema", &[])
        .map_err(failed)?
        .get(0);
    let found = usize::try_from(found.unwrap_or(0)).unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(AuditError::new(
            "postgres",
            format!(
                "the audit schema has version {found}, but this build knows versions up to \
                 {SCHEMA_VERSION}: upgrade twilio-token"
            ),
        ));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found) {
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        transaction.batch_execute(sql).map_err(failed)?;
        transaction
            .execute(
                "INSERT INTO twilio_token_audit_schema (version) VALUES ($1)",
                &[&version],
            )
            .map_err(failed)?;
    }
    transaction.commit().map_err(failed)
}

/// Describes a client error with its causes, such as `failed to connect: error connecting to
/// server: Connection refused (os error 111)`.
pub(crate) fn postgres_error(action: &str, error: &postgres::Error) -> AuditError {
    let mut message = format!("{action}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    AuditError::new("postgres", message)
}
