//! The audit log: one record per token issued and per token request rejected.
//!
//! A record contains when, which request, who (identity, authenticated subject, authentication
//! method), what was issued (profile, grants, TTL, `jti`), from which client address, and the
//! outcome with its reason. It never contains the token, a secret, a password or a credential.
//!
//! Records go to one [`AuditSink`]: SQLite ([`sqlite`], the default), PostgreSQL ([`postgres`],
//! shared by replicas) or JSON lines on stdout ([`stdout`]). A single writer thread takes the
//! records of concurrent requests and commits them as one batch (group commit), and each request
//! waits until its batch is committed. The token handler returns a token only after its record
//! is committed, unless `fail_open` is set.

pub mod postgres;
pub mod query;
pub mod sqlite;
pub mod stdout;
mod writer;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

pub use query::{AuditQuery, query_postgres, query_sqlite};

/// The default SQLite file of the audit log, relative to `server.data_dir`.
pub const DEFAULT_SQLITE_PATH: &str = "audit.sqlite3";

/// The largest number of records committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// The number of writer threads, each with its own connection, of the PostgreSQL sink.
pub const POSTGRES_WRITERS: usize = 4;

/// The largest number of records waiting for the writer. A request that finds the queue full
/// is treated like a failed write.
pub const MAX_QUEUED: usize = 16 * 1024;

/// The destination of the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// A SQLite file in WAL mode: the embedded default.
    #[default]
    Sqlite,
    /// A PostgreSQL table that several replicas share.
    Postgres,
    /// JSON lines on stdout, for a log collector.
    Stdout,
    /// No audit log.
    Off,
}

impl SinkKind {
    /// Returns the name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Sqlite => "sqlite",
            SinkKind::Postgres => "postgres",
            SinkKind::Stdout => "stdout",
            SinkKind::Off => "off",
        }
    }
}

/// `[audit]`: where audit records go and what happens when they cannot be written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// `sqlite`, `postgres`, `stdout` or `off`. Default `sqlite`.
    pub sink: SinkKind,
    /// The SQLite file, relative to `server.data_dir` unless absolute. Default `audit.sqlite3`.
    pub path: PathBuf,
    /// The PostgreSQL connection string for the `postgres` sink, as a URL
    /// (`postgresql://user:password@host:port/database`) or as `key=value` pairs. No default.
    pub url: Option<String>,
    /// Return tokens even when their record cannot be written. Default false: such requests
    /// get 503 `audit_unavailable`.
    pub fail_open: bool,
    /// When the `sqlite` sink syncs to disk. Default `full`.
    pub synchronous: Synchronous,
}

/// When the SQLite sink syncs its file to disk: SQLite's `PRAGMA synchronous` in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit syncs the WAL file, so a committed record survives a crash of the machine.
    #[default]
    Full,
    /// Commits are written to the WAL file without a sync, which happens at checkpoints. A
    /// committed record survives a crash of the process but can be lost when the machine
    /// loses power or the kernel crashes.
    Normal,
}

impl Synchronous {
    /// Returns `full` or `normal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Synchronous::Full => "full",
            Synchronous::Normal => "normal",
        }
    }
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            sink: SinkKind::Sqlite,
            path: PathBuf::from(DEFAULT_SQLITE_PATH),
            url: None,
            fail_open: false,
            synchronous: Synchronous::Full,
        }
    }
}

impl fmt::Debug for AuditSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSection")
            .field("sink", &self.sink)
            .field("path", &self.path)
            .field("url", &self.url.as_deref().map(mask_password))
            .field("fail_open", &self.fail_open)
            .field("synchronous", &self.synchronous)
            .finish()
    }
}

/// A validated `[audit]` section.
#[derive(Clone, PartialEq, Eq)]
pub enum AuditTarget {
    /// A SQLite file, and when it is synced.
    Sqlite(PathBuf, Synchronous),
    /// A PostgreSQL database. The connection string can contain a password, so `Debug` and
    /// [`AuditTarget::describe`] mask it.
    Postgres(String),
    /// Stdout.
    Stdout,
    /// No audit log.
    Off,
}

impl fmt::Debug for AuditTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl AuditTarget {
    /// Validates an `[audit]` section. A relative SQLite path is joined to `data_dir`.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] naming `audit.url` or `audit.path` when the section is
    /// incomplete or contradicts itself. The message never contains the connection string.
    pub fn from_section(section: &AuditSection, data_dir: &Path) -> Result<Self, ConfigError> {
        if section.url.is_some() && section.sink != SinkKind::Postgres {
            return Err(ConfigError::new(
                "audit.url",
                format!(
                    "url is only used by the postgres sink, but sink is {:?}: set sink = \
                     \"postgres\" or remove url",
                    section.sink.as_str()
                ),
            ));
        }
        match section.sink {
            SinkKind::Sqlite => {
                if section.path.as_os_str().is_empty() {
                    return Err(ConfigError::new(
                        "audit.path",
                        "the path is empty: name a SQLite file, such as audit.sqlite3",
                    ));
                }
                Ok(AuditTarget::Sqlite(
                    data_dir.join(&section.path),
                    section.synchronous,
                ))
            }
            SinkKind::Postgres => {
                let Some(url) = section.url.as_deref().filter(|url| !url.trim().is_empty()) else {
                    return Err(ConfigError::new(
                        "audit.url",
                        "the postgres sink needs a connection string: set url, such as \
                         \"postgresql://twilio_token@127.0.0.1:5432/twilio_token\"",
                    ));
                };
                postgres::parse_config(url).map_err(|error| {
                    ConfigError::new(
                        "audit.url",
                        format!(
                            "not a valid PostgreSQL connection string ({error}): write \
                             postgresql://user:password@host:port/database or key=value pairs"
                        ),
                    )
                })?;
                Ok(AuditTarget::Postgres(url.to_owned()))
            }
            SinkKind::Stdout => Ok(AuditTarget::Stdout),
            SinkKind::Off => Ok(AuditTarget::Off),
        }
    }

    /// Describes the target for logs and `config check`, with any password masked: `sqlite
    /// data/audit.sqlite3`, `postgres postgresql://app:***@db/audit`, `stdout` or `off`.
    pub fn describe(&self) -> String {
        match self {
            AuditTarget::Sqlite(path, Synchronous::Full) => format!("sqlite {}", path.display()),
            AuditTarget::Sqlite(path, Synchronous::Normal) => {
                format!("sqlite {} (synchronous normal)", path.display())
            }
            AuditTarget::Postgres(url) => format!("postgres {}", mask_password(url)),
            AuditTarget::Stdout => "stdout".to_owned(),
            AuditTarget::Off => "off".to_owned(),
        }
    }

    /// Makes one sink per writer thread: [`POSTGRES_WRITERS`] for PostgreSQL, whose server
    /// commits several connections' transactions at once, and one for the others, which have
    /// a single writer anyway.
    fn open_sinks(&self) -> Vec<Box<dyn AuditSink>> {
        match self {
            AuditTarget::Sqlite(path, synchronous) => vec![Box::new(
                sqlite::SqliteSink::new(path.clone()).synchronous(*synchronous),
            )],
            AuditTarget::Postgres(url) => (0..POSTGRES_WRITERS)
                .map(|_| Box::new(postgres::PostgresSink::new(url.clone())) as Box<dyn AuditSink>)
                .collect(),
            AuditTarget::Stdout => vec![Box::new(stdout::StdoutSink::new())],
            AuditTarget::Off => Vec::new(),
        }
    }
}

/// Replaces the password in a PostgreSQL connection string with `***`, in both the URL form
/// (`postgresql://user:secret@host/db`, `?password=secret`) and the `key=value` form
/// (`password=secret`).
pub fn mask_password(url: &str) -> String {
    let mut masked = url.to_owned();
    if let Some(scheme_end) = masked.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = masked[authority_start..]
            .find(['/', '?'])
            .map_or(masked.len(), |end| authority_start + end);
        if let Some(at) = masked[authority_start..authority_end].rfind('@') {
            let user_info = &masked[authority_start..authority_start + at];
            if let Some(colon) = user_info.find(':') {
                let password_start = authority_start + colon + 1;
                masked.replace_range(password_start..authority_start + at, "***");
            }
        }
    }
    mask_password_parameter(&masked)
}

/// Masks the value of every `password=` parameter, in a query string or in `key=value` pairs.
fn mask_password_parameter(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.to_ascii_lowercase().find("password=") {
        let starts_parameter = found == 0
            || rest[..found]
                .chars()
                .next_back()
                .is_some_and(|before| matches!(before, '?' | '&' | ' '));
        let value_start = found + "password=".len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        if !starts_parameter {
            continue;
        }
        let value_end = if let Some(quoted) = rest.strip_prefix('\'') {
            quoted.find('\'').map_or(rest.len(), |end| end + 2)
        } else {
            rest.find(['&', ' ']).unwrap_or(rest.len())
        };
        out.push_str("***");
        rest = &rest[value_end..];
    }
    out.push_str(rest);
    out
}

/// Whether a token was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A token was issued.
    Issued,
    /// The request was rejected; the record's reason is the error code.
    Refused,
}

impl Outcome {
    /// Returns `issued` or `refused`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Issued => "issued",
            Outcome::Refused => "refused",
        }
    }

    /// Parses `issued` or `refused`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "issued" => Some(Outcome::Issued),
            "refused" => Some(Outcome::Refused),
            _ => None,
        }
    }
}

/// One audit record. It contains no token, secret or credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the request was decided, in Unix seconds. For an issued token it equals the
    /// token's `iat`.
    pub time: u64,
    /// The request id, also sent to the client as `X-Request-Id`.
    pub request_id: String,
    /// Whether a token was issued.
    pub outcome: Outcome,
    /// The HTTP status returned.
    pub status: u16,
    /// The error code of a rejected request, such as `missing_credentials`.
    pub reason: Option<String>,
    /// The identity the token was issued for. For a request rejected after authentication, the
    /// identity it named when that is valid, or else the caller's own identity.
    pub identity: Option<String>,
    /// The authenticated party: an API key's name or a user name.
    pub subject: Option<String>,
    /// The authentication method, such as `api_key` or `users`.
    pub auth_method: Option<String>,
    /// The profile the token was signed with.
    pub profile: Option<String>,
    /// The grants issued, by request name, such as `chat`.
    pub grants: Vec<String>,
    /// The TTL issued, in seconds.
    pub ttl: Option<u64>,
    /// The token's `jti`: `<API key SID>-<iat>`. Tokens signed with one key in the same second
    /// share it, so the request id is the unique key of a record.
    pub jti: Option<String>,
    /// The TCP peer's IP address. Behind a proxy this is the proxy.
    pub client_addr: Option<String>,
}

impl AuditRecord {
    /// Starts a record of a request with its time, request id and client address. The outcome
    /// is `Refused` with status 500 and every other field empty until the caller sets them.
    pub fn new(time: u64, request_id: &str, peer: Option<SocketAddr>) -> Self {
        AuditRecord {
            time,
            request_id: request_id.to_owned(),
            outcome: Outcome::Refused,
            status: 500,
            reason: None,
            identity: None,
            subject: None,
            auth_method: None,
            profile: None,
            grants: Vec::new(),
            ttl: None,
            jti: None,
            client_addr: peer.map(|peer| peer.ip().to_canonical().to_string()),
        }
    }
}

/// A failed write to the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditError {
    /// The sink, such as `postgres`.
    pub sink: &'static str,
    /// What failed, without the connection string.
    pub message: String,
}

impl AuditError {
    pub(crate) fn new(sink: &'static str, message: impl Into<String>) -> Self {
        AuditError {
            sink,
            message: message.into(),
        }
    }
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} audit sink failed: {}", self.sink, self.message)
    }
}

impl std::error::Error for AuditError {}

/// A place audit records are committed to. The writer thread calls it, one batch at a time.
pub trait AuditSink: Send {
    /// Returns the sink's name for logs, such as `sqlite`.
    fn name(&self) -> &'static str;

    /// Opens the connection and brings the schema up to date, or checks an open connection and
    /// replaces it when it is broken. The writer calls it before the first batch, after any
    /// failed batch, and for start-up checks and readiness probes, so a sink recovers when its
    /// database comes back.
    ///
    /// # Errors
    ///
    /// Returns an [`AuditError`] when the database cannot be reached or migrated.
    fn prepare(&mut self) -> Result<(), AuditError>;

    /// Commits `records` durably, all or none.
    ///
    /// # Errors
    ///
    /// Returns an [`AuditError`] when the batch was not committed.
    fn write_batch(&mut self, records: &[AuditRecord]) -> Result<(), AuditError>;
}

/// The audit log of a running server: a handle to its writer thread.
///
/// The thread starts on [`AuditLog::start`] or the first record. Dropping the last handle lets
/// the thread commit what is queued and end.
pub struct AuditLog {
    /// The configured target, or `None` for a sink given by the application.
    target: Option<AuditTarget>,
    description: String,
    fail_open: bool,
    sinks: Mutex<Vec<Box<dyn AuditSink>>>,
    writer: OnceLock<Option<writer::Writer>>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("target", &self.description)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Makes the audit log for a validated target. Nothing is opened yet.
    pub fn new(target: &AuditTarget, fail_open: bool) -> Self {
        AuditLog {
            target: Some(target.clone()),
            description: target.describe(),
            fail_open,
            sinks: Mutex::new(target.open_sinks()),
            writer: OnceLock::new(),
        }
    }

    /// Makes an audit log that writes to `sink`, for embedding applications and tests.
    pub fn with_sink(sink: Box<dyn AuditSink>, fail_open: bool) -> Self {
        AuditLog {
            target: None,
            description: sink.name().to_owned(),
            fail_open,
            sinks: Mutex::new(vec![sink]),
            writer: OnceLock::new(),
        }
    }

    /// Makes an audit log that records nothing.
    pub fn off() -> Self {
        AuditLog::new(&AuditTarget::Off, false)
    }

    /// Returns true when this log writes to `target` with the same fail-open choice, so a
    /// reloaded configuration can keep it, with its open files and connections.
    pub fn is_for(&self, target: &AuditTarget, fail_open: bool) -> bool {
        self.target.as_ref() == Some(target) && self.fail_open == fail_open
    }

    /// Returns the kind of sink, such as `sqlite`, for metrics.
    pub fn sink_name(&self) -> &'static str {
        match &self.target {
            Some(AuditTarget::Sqlite(..)) => "sqlite",
            Some(AuditTarget::Postgres(_)) => "postgres",
            Some(AuditTarget::Stdout) => "stdout",
            Some(AuditTarget::Off) => "off",
            None => "custom",
        }
    }

    /// Returns true when records are written somewhere.
    pub fn is_enabled(&self) -> bool {
        self.writer().is_some()
    }

    /// Returns true when the last batch the writer tried failed, so the sink is down until a
    /// later batch succeeds. False before the first batch and when the log is off.
    pub fn is_failing(&self) -> bool {
        self.writer
            .get()
            .and_then(Option::as_ref)
            .is_some_and(writer::Writer::is_failing)
    }

    /// Returns true when tokens are returned even if their record cannot be written.
    pub fn fail_open(&self) -> bool {
        self.fail_open
    }

    /// Describes where records go, with any password masked.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Starts the writer and waits until the sink is open and its schema up to date, so that
    /// start-up fails early on a wrong path or an unreachable database. It blocks the calling
    /// thread, so call it before serving.
    ///
    /// # Errors
    ///
    /// Returns the sink's [`AuditError`].
    pub fn start(&self) -> Result<(), AuditError> {
        match self.writer() {
            Some(writer) => writer.prepare(),
            None => Ok(()),
        }
    }

    /// Tries to open the sink again after a failure, and returns whether it works now. The
    /// readiness check calls it, so a replica that no request reaches can become ready again.
    ///
    /// # Errors
    ///
    /// Returns the sink's [`AuditError`].
    pub async fn probe(&self) -> Result<(), AuditError> {
        match self.writer() {
            Some(writer) => writer.probe().await,
            None => Ok(()),
        }
    }

    /// Writes one record and returns when it is committed.
    ///
    /// # Errors
    ///
    /// Returns an [`AuditError`] when the record was not committed: the sink failed, or the
    /// queue is full.
    pub async fn record(&self, record: AuditRecord) -> Result<(), AuditError> {
        match self.writer() {
            Some(writer) => writer.write(record).await,
            None => Ok(()),
        }
    }

    fn writer(&self) -> Option<&writer::Writer> {
        self.writer
            .get_or_init(|| {
                let sinks =
                    std::mem::take(&mut *self.sinks.lock().unwrap_or_else(PoisonError::into_inner));
                (!sinks.is_empty()).then(|| writer::Writer::spawn(sinks))
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_password_hides_url_password() {
        assert_eq!(
            mask_password("postgresql://app:s3cr%40t@db.internal:5432/audit"),
            "postgresql://app:***@db.internal:5432/audit"
        );
    }

    #[test]
    fn mask_password_keeps_url_without_password() {
        assert_eq!(
            mask_password("postgresql://app@127.0.0.1/audit"),
            "postgresql://app@127.0.0.1/audit"
        );
    }

    #[test]
    fn mask_password_hides_query_parameter() {
        assert_eq!(
            mask_password(
                "postgresql://127.0.0.1/audit?user=app&password=hunter22&sslmode=disable"
            ),
            "postgresql://127.0.0.1/audit?user=app&password=***&sslmode=disable"
        );
    }

    #[test]
    fn mask_password_hides_key_value_password() {
        assert_eq!(
            mask_password("host=/run/pg user=app password='a b c' dbname=audit"),
            "host=/run/pg user=app password=*** dbname=audit"
        );
        assert_eq!(
            mask_password("password=hunter22 host=db"),
            "password=*** host=db"
        );
    }

    #[test]
    fn target_postgres_without_url_names_key() {
        let section = AuditSection {
            sink: SinkKind::Postgres,
            ..AuditSection::default()
        };
        let error = AuditTarget::from_section(&section, Path::new("data"))
            .expect_err("the section is invalid");
        assert_eq!(error.key, "audit.url");
        assert!(
            error
                .message
                .starts_with("the postgres sink needs a connection string")
        );
    }

    #[test]
    fn target_url_with_other_sink_names_key() {
        let section = AuditSection {
            url: Some("postgresql://app@127.0.0.1/audit".into()),
            ..AuditSection::default()
        };
        let error = AuditTarget::from_section(&section, Path::new("data"))
            .expect_err("the section is invalid");
        assert_eq!(error.key, "audit.url");
        assert_eq!(
            error.message,
            "url is only used by the postgres sink, but sink is \"sqlite\": set sink = \
             \"postgres\" or remove url"
        );
    }

    #[test]
    fn target_invalid_url_hides_password() {
        let section = AuditSection {
            sink: SinkKind::Postgres,
            url: Some("postgresql://app:hunter22@127.0.0.1:notaport/audit".into()),
            ..AuditSection::default()
        };
        let error = AuditTarget::from_section(&section, Path::new("data"))
            .expect_err("the section is invalid");
        assert_eq!(error.key, "audit.url");
        assert!(
            error
                .message
                .starts_with("not a valid PostgreSQL connection string"),
            "{}",
            error.message
        );
        assert!(!error.message.contains("hunter22"), "{}", error.message);
    }

    #[test]
    fn target_sqlite_joins_data_dir() {
        let target = AuditTarget::from_section(&AuditSection::default(), Path::new("data"))
            .expect("the default section is valid");
        assert_eq!(
            target,
            AuditTarget::Sqlite(PathBuf::from("data/audit.sqlite3"), Synchronous::Full)
        );
        assert_eq!(target.describe(), "sqlite data/audit.sqlite3");
    }

    #[test]
    fn section_debug_masks_password() {
        let section = AuditSection {
            sink: SinkKind::Postgres,
            url: Some("postgresql://app:hunter22@127.0.0.1/audit".into()),
            ..AuditSection::default()
        };
        let debug = format!("{section:?}");
        assert!(!debug.contains("hunter22"), "{debug}");
        assert!(debug.contains("app:***@"), "{debug}");
    }
}
