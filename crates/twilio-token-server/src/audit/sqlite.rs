//! The SQLite audit sink: one file in WAL mode, the embedded default.
//!
//! Each batch is one transaction. With `synchronous = FULL` (the default) SQLite syncs the WAL
//! file on every commit, so a committed record survives a crash of the process and of the
//! machine. With `NORMAL` it survives a crash of the process only.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use super::{AuditError, AuditRecord, AuditSink, Synchronous};

/// The schema version this build writes, stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Schema migrations. Migration `i` moves the database from version `i` to `i + 1`. Append new
/// ones, and never edit one that has shipped.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE twilio_token_audit (
        id INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('issued', 'refused')),
        status INTEGER NOT NULL,
        reason TEXT,
        identity TEXT,
        subject TEXT,
        auth_method TEXT,
        profile TEXT,
        grants TEXT NOT NULL DEFAULT '',
        ttl INTEGER,
        jti TEXT,
        client_addr TEXT
    );
    CREATE INDEX twilio_token_audit_by_time ON twilio_token_audit (time);
    CREATE INDEX twilio_token_audit_by_identity ON twilio_token_audit (identity, time);
"];

const INSERT: &str = "INSERT INTO twilio_token_audit (time, request_id, outcome, status, reason, \
     identity, subject, auth_method, profile, grants, ttl, jti, client_addr) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// Writes audit records to a SQLite file.
#[derive(Debug)]
pub struct SqliteSink {
    path: PathBuf,
    synchronous: Synchronous,
    connection: Option<Connection>,
}

impl SqliteSink {
    /// Makes a sink for the file at `path`. Nothing is opened until [`AuditSink::prepare`].
    pub fn new(path: PathBuf) -> Self {
        SqliteSink {
            path,
            synchronous: Synchronous::Full,
            connection: None,
        }
    }

    /// Sets when the file is synced. Default [`Synchronous::Full`].
    #[must_use]
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }
}

impl AuditSink for SqliteSink {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn prepare(&mut self) -> Result<(), AuditError> {
        if self.connection.is_none() {
            let connection = open(&self.path, true)?;
            connection
                .pragma_update(None, "synchronous", self.synchronous.as_str())
                .map_err(|error| sqlite_error(&self.path, "failed to configure", &error))?;
            self.connection = Some(connection);
        }
        Ok(())
    }

    fn write_batch(&mut self, records: &[AuditRecord]) -> Result<(), AuditError> {
        let Some(connection) = self.connection.as_mut() else {
            return Err(AuditError::new("sqlite", "the database is not open"));
        };
        let result = insert(connection, records);
        if result.is_err() {
            self.connection = None;
        }
        result.map_err(|error| sqlite_error(&self.path, "failed to write to", &error))
    }
}

fn insert(connection: &mut Connection, records: &[AuditRecord]) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    {
        let mut statement = transaction.prepare_cached(INSERT)?;
        for record in records {
            statement.execute(params![
                i64::try_from(record.time).unwrap_or(i64::MAX),
                record.request_id,
                record.outcome.as_str(),
                record.status,
                record.reason,
                record.identity,
                record.subject,
                record.auth_method,
                record.profile,
                record.grants.join(","),
                record.ttl.map(|ttl| i64::try_from(ttl).unwrap_or(i64::MAX)),
                record.jti,
                record.client_addr,
            ])?;
        }
    }
    transaction.commit()
}

/// Opens the audit database. With `create`, a missing file and folder are created (mode 0600
/// and 0700 on Unix) and the schema is migrated; without it, the file must exist, which is what
/// `twilio-token audit` wants.
///
/// # Errors
///
/// Returns an [`AuditError`] naming the file.
pub fn open(path: &Path, create: bool) -> Result<Connection, AuditError> {
    if create {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            crate::auth::users::create_private_dir(parent).map_err(|error| {
                AuditError::new(
                    "sqlite",
                    format!("failed to create the folder {}: {error}", parent.display()),
                )
            })?;
        }
        create_private_file(path).map_err(|error| {
            AuditError::new(
                "sqlite",
                format!("failed to create {}: {error}", path.display()),
            )
        })?;
    } else if !path.exists() {
        return Err(AuditError::new(
            "sqlite",
            format!(
                "{} does not exist: check server.data_dir and audit.path, or pass the \
                 server's --config",
                path.display()
            ),
        ));
    }

    let mut connection =
        Connection::open(path).map_err(|error| sqlite_error(path, "failed to open", &error))?;
    configure(&connection).map_err(|error| sqlite_error(path, "failed to configure", &error))?;
    if create {
        migrate(&mut connection, path)?;
    }
    Ok(connection)
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    crate::sqlite::use_wal(connection)?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), AuditError> {
    let failed = |error: rusqlite::Error| sqlite_error(path, "failed to migrate", &error);
    // The version is read inside a write transaction, so a second process starting at the
    // same time waits for the first one's migrations and then finds nothing left to do.
    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(failed)?;
    let found: i64 = transaction
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(failed)?;
    let found = usize::try_from(found).unwrap_or(usize::MAX);
    if found > SCHEMA_VERSION {
        return Err(AuditError::new(
            "sqlite",
            format!(
                "{} has schema version {found}, but this build knows versions up to \
                 {SCHEMA_VERSION}: upgrade twilio-token",
                path.display()
            ),
        ));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found) {
        transaction.execute_batch(sql).map_err(failed)?;
        transaction
            .pragma_update(None, "user_version", version + 1)
            .map_err(failed)?;
    }
    transaction.commit().map_err(failed)
}

fn sqlite_error(path: &Path, action: &str, error: &rusqlite::Error) -> AuditError {
    AuditError::new("sqlite", format!("{action} {}: {error}", path.display()))
}

/// Creates an empty file with mode 0600 on Unix, unless it exists.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_opening_a_new_file_together_all_succeed() {
        use std::hash::{BuildHasher as _, RandomState};
        let folder = std::env::temp_dir().join(format!(
            "twilio-token-audit-race-{}-{}",
            std::process::id(),
            RandomState::new().hash_one(std::time::SystemTime::now())
        ));
        let path = folder.join("audit.sqlite3");
        // Each thread has its own connection, as two server processes on one file would.
        let openers: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || SqliteSink::new(path).prepare())
            })
            .collect();
        for opener in openers {
            let opened = opener.join().expect("the thread ends");
            assert!(
                opened.is_ok(),
                "{:?}",
                opened.err().map(|error| error.message)
            );
        }
        let connection = Connection::open(&path).expect("opens");
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("version");
        assert_eq!(version, i64::try_from(SCHEMA_VERSION).expect("small"));
        let _ = std::fs::remove_dir_all(folder);
    }
}
