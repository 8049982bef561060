//! Reading the audit log back, for `twilio-token audit` and for tests.

use std::path::Path;

use super::{AuditError, AuditRecord, Outcome};

/// Which records to read. Every filter is optional; records come back oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records with this identity.
    pub identity: Option<String>,
    /// Only records at or after this time, in Unix seconds.
    pub since: Option<u64>,
    /// Only records before this time, in Unix seconds.
    pub until: Option<u64>,
    /// Only records with this outcome.
    pub outcome: Option<Outcome>,
    /// At most this many records, the newest ones. `None` reads all.
    pub limit: Option<u64>,
}

const COLUMNS: &str = "request_id, outcome, status, reason, identity, subject, auth_method, \
     profile, grants, ttl, jti, client_addr";

/// Reads records from the SQLite audit file at `path`.
///
/// # Errors
///
/// Returns an [`AuditError`] when the file does not exist or cannot be read.
pub fn query_sqlite(path: &Path, query: &AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
    let connection = super::sqlite::open(path, false)?;
    let failed = |error: rusqlite::Error| {
        AuditError::new(
            "sqlite",
            format!("failed to read {}: {error}", path.display()),
        )
    };
    let sql = format!(
        "SELECT time, {COLUMNS} FROM twilio_token_audit \
         WHERE (?1 IS NULL OR identity = ?1) AND (?2 IS NULL OR time >= ?2) \
         AND (?3 IS NULL OR time < ?3) AND (?4 IS NULL OR outcome = ?4) \
         ORDER BY time DESC, id DESC LIMIT ?5"
    );
    let mut statement = connection.prepare(&sql).map_err(failed)?;
    let to_i64 = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let rows = statement
        .query_map(
            rusqlite::params![
                query.identity,
                query.since.map(to_i64),
                query.until.map(to_i64),
                query.outcome.map(Outcome::as_str),
                query.limit.map_or(-1, to_i64),
            ],
            |row| {
                Ok(Row {
                    time: row.get(0)?,
                    request_id: row.get(1)?,
                    outcome: row.get(2)?,
                    status: row.get(3)?,
                    reason: row.get(4)?,
                    identity: row.get(5)?,
                    subject: row.get(6)?,
                    auth_method: row.get(7)?,
                    profile: row.get(8)?,
                    grants: row.get(9)?,
                    ttl: row.get(10)?,
                    jti: row.get(11)?,
                    client_addr: row.get(12)?,
                })
            },
        )
        .map_err(failed)?;
    let mut records = Vec::new();
    for row in rows {
        records.push(row.map_err(failed)?.into_record("sqlite")?);
    }
    records.reverse();
    Ok(records)
}

/// Reads records from the PostgreSQL audit table at `url`.
///
/// It uses the synchronous client, so call it outside any tokio runtime.
///
/// # Errors
///
/// Returns an [`AuditError`], without the connection string, when the database cannot be
/// reached or read.
pub fn query_postgres(url: &str, query: &AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
    let mut client = super::postgres::connect(url)?;
    let failed = |error: postgres::Error| super::postgres::postgres_error("failed to read", &error);
    let sql = format!(
        "SELECT extract(epoch FROM time)::int8, {COLUMNS} FROM twilio_token_audit \
         WHERE ($1::text IS NULL OR identity = $1) \
         AND ($2::int8 IS NULL OR time >= to_timestamp($2)) \
         AND ($3::int8 IS NULL OR time < to_timestamp($3)) \
         AND ($4::text IS NULL OR outcome = $4) \
         ORDER BY time DESC, id DESC LIMIT $5"
    );
    let to_i64 = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let since = query.since.map(to_i64);
    let until = query.until.map(to_i64);
    let outcome = query.outcome.map(Outcome::as_str);
    let limit = query.limit.map(to_i64);
    let rows = client
        .query(&sql, &[&query.identity, &since, &until, &outcome, &limit])
        .map_err(failed)?;
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let status: i32 = row.get(3);
        let parsed = Row {
            time: row.get(0),
            request_id: row.get(1),
            outcome: row.get(2),
            status: i64::from(status),
            reason: row.get(4),
            identity: row.get(5),
            subject: row.get(6),
            auth_method: row.get(7),
            profile: row.get(8),
            grants: row.get(9),
            ttl: row.get(10),
            jti: row.get(11),
            client_addr: row.get(12),
        };
        records.push(parsed.into_record("postgres")?);
    }
    records.reverse();
    Ok(records)
}

/// A record as stored, before its values are checked.
struct Row {
    time: i64,
    request_id: String,
    outcome: String,
    status: i64,
    reason: Option<String>,
    identity: Option<String>,
    subject: Option<String>,
    auth_method: Option<String>,
    profile: Option<String>,
    grants: String,
    ttl: Option<i64>,
    jti: Option<String>,
    client_addr: Option<String>,
}

impl Row {
    fn into_record(self, sink: &'static str) -> Result<AuditRecord, AuditError> {
        let Some(outcome) = Outcome::parse(&self.outcome) else {
            return Err(AuditError::new(
                sink,
                format!(
                    "the record of request {} has the unknown outcome {:?}",
                    self.request_id, self.outcome
                ),
            ));
        };
        Ok(AuditRecord {
            time: u64::try_from(self.time).unwrap_or(0),
            request_id: self.request_id,
            outcome,
            status: u16::try_from(self.status).unwrap_or(0),
            reason: self.reason,
            identity: self.identity,
            subject: self.subject,
            auth_method: self.auth_method,
            profile: self.profile,
            grants: self
                .grants
                .split(',')
                .filter(|grant| !grant.is_empty())
                .map(str::to_owned)
                .collect(),
            ttl: self.ttl.and_then(|ttl| u64::try_from(ttl).ok()),
            jti: self.jti,
            client_addr: self.client_addr,
        })
    }
}
