//! The deny lists in a SQLite file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, params};

use super::{IdentityEntry, RevocationError, RevocationList};
use crate::auth::users::create_private_dir;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS revoked_identities (
    identity TEXT PRIMARY KEY NOT NULL,
    before INTEGER,
    revoked_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_jtis (
    jti TEXT PRIMARY KEY NOT NULL,
    revoked_at INTEGER NOT NULL
);
";

/// The deny lists in a SQLite file in WAL mode, shared by the server and the `revoke` command.
#[derive(Clone)]
pub struct SqliteRevocations {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl fmt::Debug for SqliteRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteRevocations")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteRevocations {
    /// Opens the file, creating it (mode 0600) and its folder (0700) when missing.
    ///
    /// # Errors
    ///
    /// Returns [`RevocationError::Open`] when the file cannot be created or opened.
    pub fn open(path: &Path) -> Result<Self, RevocationError> {
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| RevocationError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            create_private_dir(parent).map_err(|error| open_error(Box::new(error)))?;
        }
        create_private_file(path).map_err(|error| open_error(Box::new(error)))?;
        let connection = Connection::open(path).map_err(|error| open_error(Box::new(error)))?;
        crate::sqlite::use_wal(&connection)
            .and_then(|()| connection.execute_batch(SCHEMA))
            .map_err(|error| open_error(Box::new(error)))?;
        Ok(SqliteRevocations {
            connection: Arc::new(Mutex::new(connection)),
            path: path.to_owned(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        action: &'static str,
        task: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, RevocationError> {
        let connection = Arc::clone(&self.connection);
        let failed = |cause: String| RevocationError::Store { action, cause };
        tokio::task::spawn_blocking(move || {
            let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            task(&connection)
        })
        .await
        .map_err(|error| failed(error.to_string()))?
        .map_err(|error| failed(error.to_string()))
    }

    pub(super) async fn revoke_identity(
        &self,
        identity: &str,
        entry: IdentityEntry,
    ) -> Result<(), RevocationError> {
        let identity = identity.to_owned();
        let before = entry.before.map(to_sql);
        let revoked_at = to_sql(entry.revoked_at);
        let expired_before = to_sql(entry.revoked_at.saturating_sub(super::JTI_ENTRY_SECS));
        self.run("writing the identity entry", move |connection| {
            let transaction = connection.unchecked_transaction()?;
            transaction.execute(
                "INSERT INTO revoked_identities (identity, before, revoked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (identity) DO UPDATE SET before = ?2, revoked_at = ?3",
                params![identity, before, revoked_at],
            )?;
            // The entry just written stays until the next write, so `revoke list` shows it.
            transaction.execute(
                "DELETE FROM revoked_identities
                 WHERE before IS NOT NULL AND before < ?1 AND identity != ?2",
                params![expired_before, identity],
            )?;
            transaction.commit()
        })
        .await
    }

    pub(super) async fn revoke_jti(&self, jti: &str, now: u64) -> Result<(), RevocationError> {
        let jti = jti.to_owned();
        let expired_before = now.saturating_sub(super::JTI_ENTRY_SECS);
        self.run("writing the jti entry", move |connection| {
            let transaction = connection.unchecked_transaction()?;
            transaction.execute(
                "INSERT INTO revoked_jtis (jti, revoked_at) VALUES (?1, ?2)
                 ON CONFLICT (jti) DO NOTHING",
                params![jti, to_sql(now)],
            )?;
            transaction.execute(
                "DELETE FROM revoked_jtis WHERE revoked_at < ?1",
                params![to_sql(expired_before)],
            )?;
            transaction.commit()
        })
        .await
    }

    pub(super) async fn remove_identity(&self, identity: &str) -> Result<bool, RevocationError> {
        let identity = identity.to_owned();
        self.run("removing the identity entry", move |connection| {
            connection.execute(
                "DELETE FROM revoked_identities WHERE identity = ?1",
                params![identity],
            )
        })
        .await
        .map(|rows| rows > 0)
    }

    pub(super) async fn remove_jti(&self, jti: &str) -> Result<bool, RevocationError> {
        let jti = jti.to_owned();
        self.run("removing the jti entry", move |connection| {
            connection.execute("DELETE FROM revoked_jtis WHERE jti = ?1", params![jti])
        })
        .await
        .map(|rows| rows > 0)
    }

    pub(super) async fn load(&self) -> Result<RevocationList, RevocationError> {
        self.run("reading the revocation list", |connection| {
            let mut list = RevocationList::default();
            let mut statement = connection
                .prepare("SELECT identity, before, revoked_at FROM revoked_identities")?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<i64>>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (identity, before, revoked_at) = row?;
                list.identities.insert(
                    identity,
                    IdentityEntry {
                        before: before.map(from_sql),
                        revoked_at: from_sql(revoked_at),
                    },
                );
            }
            let mut statement = connection.prepare("SELECT jti, revoked_at FROM revoked_jtis")?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (jti, revoked_at) = row?;
                list.jtis.insert(jti, from_sql(revoked_at));
            }
            Ok(list)
        })
        .await
    }
}

fn to_sql(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn from_sql(secs: i64) -> u64 {
    u64::try_from(secs).unwrap_or(0)
}

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
