//! The user database: users with Argon2id password hashes, and sign-in sessions.
//!
//! One SQLite file in WAL mode contains two tables. `users` stores each user's name, PHC-format
//! password hash and groups (a JSON list). `sessions` stores the SHA-256 of each session id, never
//! the id itself, so a copy of the database cannot be used to sign in as anyone.
//!
//! Every call runs on tokio's blocking pool. Password hashing additionally waits for one of
//! [`HASHING_PERMITS`] permits, so a burst of sign-ins cannot occupy every blocking thread.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use twilio_access_token::{Clock, SystemClock};
use zeroize::Zeroizing;

/// The maximum number of characters in a user name.
pub const MAX_NAME_CHARS: usize = 64;

/// The minimum number of characters in a password.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// The maximum number of characters in a password. Argon2 accepts longer ones, but a cap keeps
/// a huge password from costing memory and time before it is hashed.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// How many Argon2 computations may run at once. Each takes 19 MiB of memory with the default
/// parameters of the argon2 crate 0.5 (`m_cost` 19456 KiB, `t_cost` 2).
pub const HASHING_PERMITS: usize = 2;

/// The schema version this build writes, stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The number of random bytes in a session id.
const SESSION_ID_BYTES: usize = 32;

/// The length of a session id: 32 bytes in unpadded base64url.
const SESSION_ID_CHARS: usize = 43;

/// Schema migrations. Migration `i` moves the database from version `i` to `i + 1`. Append new
/// ones, and never edit one that has shipped.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE users (
        name TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        groups TEXT NOT NULL DEFAULT '[]',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        id_hash BLOB PRIMARY KEY NOT NULL,
        user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_user ON sessions (user);
    CREATE INDEX sessions_by_expiry ON sessions (expires_at);
"];

/// A failed user store operation.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The user name breaks the naming rule.
    InvalidName {
        /// The rejected name.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A group name breaks the naming rule.
    InvalidGroup {
        /// The rejected group.
        group: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The password is too short or too long. The password itself is never kept.
    InvalidPassword {
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A user with this name already exists. Names are compared without regard to ASCII case.
    UserExists {
        /// The requested name.
        name: String,
    },
    /// No user has this name.
    UserNotFound {
        /// The requested name.
        name: String,
    },
    /// The database file could not be opened or prepared.
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database was written by a newer version of this program.
    SchemaTooNew {
        /// The version found in the file.
        found: usize,
        /// The newest version this build supports.
        supported: usize,
    },
    /// A query failed.
    Database {
        /// The failed operation, such as `add the user`.
        action: &'static str,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A stored record cannot be read back, such as a password hash that is not in PHC format.
    CorruptRecord {
        /// The user the record belongs to.
        name: String,
        /// The unreadable column.
        column: &'static str,
    },
    /// Argon2 failed to hash a password.
    Hashing(argon2::password_hash::Error),
    /// The system clock is set before 1970.
    ClockBeforeEpoch,
    /// A task on the blocking pool panicked or was cancelled.
    TaskFailed,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InvalidName { name, rule } => {
                write!(f, "the user name {name:?} is not valid: {rule}")
            }
            StoreError::InvalidGroup { group, rule } => {
                write!(f, "the group name {group:?} is not valid: {rule}")
            }
            StoreError::InvalidPassword { rule } => write!(f, "the password is not valid: {rule}"),
            StoreError::UserExists { name } => write!(f, "a user named {name:?} already exists"),
            StoreError::UserNotFound { name } => write!(f, "no user is named {name:?}"),
            StoreError::Open { path, .. } => {
                write!(f, "failed to open the user database {}", path.display())
            }
            StoreError::SchemaTooNew { found, supported } => write!(
                f,
                "the user database has schema version {found} but this program supports up to \
                 {supported}: run a newer twilio-token"
            ),
            StoreError::Database { action, .. } => {
                write!(f, "failed to {action} in the user database")
            }
            StoreError::CorruptRecord { name, column } => {
                write!(f, "the stored {column} of user {name:?} cannot be read")
            }
            StoreError::Hashing(_) => f.write_str("failed to hash the password"),
            StoreError::ClockBeforeEpoch => f.write_str("the system clock is set before 1970"),
            StoreError::TaskFailed => f.write_str("a user database task stopped unexpectedly"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Open { source, .. } => Some(source.as_ref()),
            StoreError::Database { source, .. } => Some(source),
            StoreError::Hashing(source) => Some(source),
            _ => None,
        }
    }
}

/// A user as listed, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name, which is also the identity tokens are minted for.
    pub name: String,
    /// Groups for policy rules.
    pub groups: Vec<String>,
    /// When the user was added, in Unix seconds.
    pub created_at: u64,
    /// When the password or groups last changed, in Unix seconds.
    pub updated_at: u64,
}

/// The user behind a valid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The user name as stored, which may differ in ASCII case from the name typed at sign-in.
    pub name: String,
    /// Groups for policy rules.
    pub groups: Vec<String>,
    /// When the session expires, in Unix seconds.
    pub expires_at: u64,
}

/// A random session id: 32 bytes from the operating system's generator, in base64url.
///
/// It never prints: `Debug` shows `SessionId(..)`, and the text is zeroized on drop.
pub struct SessionId(Zeroizing<String>);

impl SessionId {
    fn generate() -> SessionId {
        let mut bytes = Zeroizing::new([0u8; SESSION_ID_BYTES]);
        rand::rng().fill_bytes(bytes.as_mut());
        SessionId(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref())))
    }

    /// Returns the id, to be signed into a cookie. Keep it out of logs and error messages.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(..)")
    }
}

/// A session that was just created.
#[derive(Debug)]
pub struct NewSession {
    /// The session id, which only the client keeps.
    pub id: SessionId,
    /// The user name as stored.
    pub user: String,
    /// When the session expires, in Unix seconds.
    pub expires_at: u64,
}

/// The user database. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct UserStore {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Mutex<Connection>,
    path: PathBuf,
    clock: Arc<dyn Clock + Send + Sync>,
    hashing: Arc<Semaphore>,
    /// A hash of a fixed password, verified in place of a missing user's hash so that the time
    /// taken does not reveal whether a name exists.
    dummy_hash: OnceLock<Result<String, argon2::password_hash::Error>>,
}

impl fmt::Debug for UserStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl UserStore {
    /// Opens the database at `path`, creating the file and its folder when missing, and
    /// migrates it to [`SCHEMA_VERSION`].
    ///
    /// A new file gets mode 0600 and a new folder 0700 on Unix, because the file contains
    /// password hashes. The call blocks while SQLite opens the file and runs migrations.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Open`] when the file cannot be created, opened or migrated, and
    /// [`StoreError::SchemaTooNew`] for a database from a newer version.
    pub fn open(path: &Path) -> Result<UserStore, StoreError> {
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            super::create_private_dir(parent).map_err(|error| open_error(Box::new(error)))?;
        }
        create_private_file(path).map_err(|error| open_error(Box::new(error)))?;
        let mut connection = Connection::open(path).map_err(|error| open_error(Box::new(error)))?;
        configure(&connection).map_err(|error| open_error(Box::new(error)))?;
        migrate(&mut connection).map_err(|error| match error {
            MigrationError::TooNew { found } => StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            },
            MigrationError::Sqlite(error) => open_error(Box::new(error)),
        })?;

        Ok(UserStore {
            inner: Arc::new(Inner {
                connection: Mutex::new(connection),
                path: path.to_owned(),
                clock: Arc::new(SystemClock),
                hashing: Arc::new(Semaphore::new(HASHING_PERMITS)),
                dummy_hash: OnceLock::new(),
            }),
        })
    }

    /// Replaces the system clock, which stamps users and sessions, with `clock`.
    ///
    /// # Panics
    ///
    /// Panics when the store has already been cloned, because the clones would keep the old
    /// clock. Call it right after [`UserStore::open`].
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock + Send + Sync>) -> UserStore {
        let Ok(mut inner) = Arc::try_unwrap(self.inner) else {
            panic!("UserStore::with_clock called after the store was cloned");
        };
        inner.clock = clock;
        UserStore {
            inner: Arc::new(inner),
        }
    }

    /// Returns the database file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Checks that the database responds to a query, for readiness checks.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Database`] when the query fails.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with_connection(|connection, _| {
            connection
                .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
                .map_err(database("read the schema"))
        })
        .await
    }

    /// Adds a user with an Argon2id hash of `password`.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::InvalidName`], [`StoreError::InvalidGroup`] or
    /// [`StoreError::InvalidPassword`] for input that breaks a rule, [`StoreError::UserExists`]
    /// when the name is taken, and [`StoreError::Database`] when the insert fails.
    pub async fn add_user(
        &self,
        name: &str,
        password: &str,
        groups: &[String],
    ) -> Result<(), StoreError> {
        validate_name(name)?;
        let groups = validate_groups(groups)?;
        validate_password(password)?;
        if self.user_exists(name).await? {
            return Err(StoreError::UserExists { name: name.into() });
        }

        let hash = self.hash_password(password).await?;
        let name = name.to_owned();
        let groups = serde_json::to_string(&groups).map_err(|_| StoreError::TaskFailed)?;
        self.with_connection(move |connection, now| {
            let inserted = connection.execute(
                "INSERT INTO users (name, password_hash, groups, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![name, hash, groups, now],
            );
            match inserted {
                Ok(_) => Ok(()),
                Err(error) if is_constraint_violation(&error) => {
                    Err(StoreError::UserExists { name })
                }
                Err(error) => Err(database("add the user")(error)),
            }
        })
        .await
    }

    /// Removes a user and all of their sessions.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::UserNotFound`] when no user has the name, and
    /// [`StoreError::Database`] when the delete fails.
    pub async fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.with_connection(move |connection, _| {
            let transaction = connection
                .transaction()
                .map_err(database("remove the user"))?;
            transaction
                .execute(
                    "DELETE FROM sessions WHERE user = (SELECT name FROM users WHERE name = ?1)",
                    [&name],
                )
                .map_err(database("delete the user's sessions"))?;
            let removed = transaction
                .execute("DELETE FROM users WHERE name = ?1", [&name])
                .map_err(database("remove the user"))?;
            if removed == 0 {
                return Err(StoreError::UserNotFound { name });
            }
            transaction.commit().map_err(database("remove the user"))
        })
        .await
    }

    /// Lists every user, ordered by name.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Database`] when the query fails and [`StoreError::CorruptRecord`]
    /// for groups that are not a JSON list of strings.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>, StoreError> {
        self.with_connection(|connection, _| {
            let mut statement = connection
                .prepare(
                    "SELECT name, groups, created_at, updated_at FROM users ORDER BY name
                     COLLATE NOCASE",
                )
                .map_err(database("list the users"))?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, u64>(2)?,
                        row.get::<_, u64>(3)?,
                    ))
                })
                .map_err(database("list the users"))?;
            let mut users = Vec::new();
            for row in rows {
                let (name, groups, created_at, updated_at) =
                    row.map_err(database("list the users"))?;
                let groups = parse_groups(&name, &groups)?;
                users.push(UserInfo {
                    name,
                    groups,
                    created_at,
                    updated_at,
                });
            }
            Ok(users)
        })
        .await
    }

    /// Replaces a user's password and deletes all of their sessions, so every device must sign
    /// in again.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::InvalidPassword`] for a password that breaks a rule,
    /// [`StoreError::UserNotFound`] when no user has the name, and [`StoreError::Database`] when
    /// the update fails.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        validate_password(password)?;
        if !self.user_exists(name).await? {
            return Err(StoreError::UserNotFound { name: name.into() });
        }

        let hash = self.hash_password(password).await?;
        let name = name.to_owned();
        self.with_connection(move |connection, now| {
            let transaction = connection
                .transaction()
                .map_err(database("set the password"))?;
            let updated = transaction
                .execute(
                    "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE name = ?1",
                    params![name, hash, now],
                )
                .map_err(database("set the password"))?;
            if updated == 0 {
                return Err(StoreError::UserNotFound { name });
            }
            transaction
                .execute(
                    "DELETE FROM sessions WHERE user = (SELECT name FROM users WHERE name = ?1)",
                    [&name],
                )
                .map_err(database("delete the user's sessions"))?;
            transaction.commit().map_err(database("set the password"))
        })
        .await
    }

    /// Checks a password. Returns `Ok(false)` for a wrong password and for a user that does not
    /// exist, including a name that breaks the naming rule.
    ///
    /// A missing user's check still runs Argon2, on a fixed hash, so the time taken does not
    /// reveal whether the name exists. A password over [`MAX_PASSWORD_CHARS`] is rejected
    /// without hashing.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Database`] when the lookup fails and [`StoreError::CorruptRecord`]
    /// when the stored hash is not in PHC format.
    pub async fn verify_password(&self, name: &str, password: &str) -> Result<bool, StoreError> {
        if password.chars().count() > MAX_PASSWORD_CHARS {
            return Ok(false);
        }
        let stored = if validate_name(name).is_ok() {
            self.password_hash(name).await?
        } else {
            None
        };

        let permit = self.acquire_hashing_permit().await?;
        let inner = Arc::clone(&self.inner);
        let name = name.to_owned();
        let password = Zeroizing::new(password.to_owned());
        run_blocking(move || {
            let _permit = permit;
            // Fetch the dummy hash on every call, so that the first call after start-up, which
            // computes it, is equally slow whether or not the user exists.
            let dummy = dummy_hash(&inner)?;
            let (hash_text, user_exists) = match &stored {
                Some(hash) => (hash.as_str(), true),
                None => (dummy, false),
            };
            let hash = PasswordHash::new(hash_text).map_err(|_| StoreError::CorruptRecord {
                name: name.clone(),
                column: "password_hash",
            })?;
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok();
            Ok(matches && user_exists)
        })
        .await
    }

    /// Creates a session for a user that lasts `ttl`, and deletes every expired session.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::UserNotFound`] when no user has the name, and
    /// [`StoreError::Database`] when the insert fails.
    pub async fn create_session(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<NewSession, StoreError> {
        let id = SessionId::generate();
        let id_hash = hash_session_id(id.expose_secret());
        let name = name.to_owned();
        let (user, expires_at) = self
            .with_connection(move |connection, now| {
                connection
                    .execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])
                    .map_err(database("delete expired sessions"))?;
                let expires_at = now.saturating_add(ttl.as_secs());
                let user: Option<String> = connection
                    .query_row(
                        "INSERT INTO sessions (id_hash, user, created_at, expires_at)
                         SELECT ?1, name, ?2, ?3 FROM users WHERE name = ?4
                         RETURNING user",
                        params![id_hash.as_slice(), now, expires_at, name],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(database("create the session"))?;
                match user {
                    Some(user) => Ok((user, expires_at)),
                    None => Err(StoreError::UserNotFound { name }),
                }
            })
            .await?;
        Ok(NewSession {
            id,
            user,
            expires_at,
        })
    }

    /// Returns the user of an unexpired session, or `None` for an unknown or expired session. An
    /// expired session is deleted when it is found.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Database`] when the lookup fails and [`StoreError::CorruptRecord`]
    /// for unreadable groups.
    pub async fn session_user(&self, id: &str) -> Result<Option<SessionUser>, StoreError> {
        if !is_session_id(id) {
            return Ok(None);
        }
        let id_hash = hash_session_id(id);
        self.with_connection(move |connection, now| {
            let row: Option<(String, String, u64)> = connection
                .query_row(
                    "SELECT users.name, users.groups, sessions.expires_at
                     FROM sessions JOIN users ON users.name = sessions.user
                     WHERE sessions.id_hash = ?1",
                    [id_hash.as_slice()],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .map_err(database("look up the session"))?;
            let Some((name, groups, expires_at)) = row else {
                return Ok(None);
            };
            if expires_at <= now {
                connection
                    .execute(
                        "DELETE FROM sessions WHERE id_hash = ?1",
                        [id_hash.as_slice()],
                    )
                    .map_err(database("delete the expired session"))?;
                return Ok(None);
            }
            let groups = parse_groups(&name, &groups)?;
            Ok(Some(SessionUser {
                name,
                groups,
                expires_at,
            }))
        })
        .await
    }

    /// Deletes a session. Returns true when it existed.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Database`] when the delete fails.
    pub async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        if !is_session_id(id) {
            return Ok(false);
        }
        let id_hash = hash_session_id(id);
        self.with_connection(move |connection, _| {
            connection
                .execute(
                    "DELETE FROM sessions WHERE id_hash = ?1",
                    [id_hash.as_slice()],
                )
                .map(|deleted| deleted > 0)
                .map_err(database("delete the session"))
        })
        .await
    }

    /// Deletes every session of a user and returns how many there were.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Database`] when the delete fails.
    pub async fn delete_sessions_of(&self, name: &str) -> Result<usize, StoreError> {
        let name = name.to_owned();
        self.with_connection(move |connection, _| {
            connection
                .execute(
                    "DELETE FROM sessions WHERE user = (SELECT name FROM users WHERE name = ?1)",
                    [&name],
                )
                .map_err(database("delete the user's sessions"))
        })
        .await
    }

    /// Returns true when a user has this name, compared without regard to ASCII case.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Database`] when the lookup fails.
    pub async fn user_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.password_hash(name).await?.is_some())
    }

    async fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.with_connection(move |connection, _| {
            connection
                .query_row(
                    "SELECT password_hash FROM users WHERE name = ?1",
                    [&name],
                    |row| row.get(0),
                )
                .optional()
                .map_err(database("look up the user"))
        })
        .await
    }

    async fn hash_password(&self, password: &str) -> Result<String, StoreError> {
        let permit = self.acquire_hashing_permit().await?;
        let password = Zeroizing::new(password.to_owned());
        run_blocking(move || {
            let _permit = permit;
            hash_password(&password).map_err(StoreError::Hashing)
        })
        .await
    }

    /// Waits for a hashing permit. The blocking task keeps it, so a caller that stops waiting,
    /// such as a request that timed out, does not let more hashes run than there are permits.
    async fn acquire_hashing_permit(&self) -> Result<OwnedSemaphorePermit, StoreError> {
        // The semaphore is never closed, so acquiring fails only in theory.
        Arc::clone(&self.inner.hashing)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::TaskFailed)
    }

    /// Runs `action` with the connection and the current Unix time on the blocking pool.
    async fn with_connection<T, F>(&self, action: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, u64) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        run_blocking(move || {
            let now = inner.clock.now().ok_or(StoreError::ClockBeforeEpoch)?;
            // A panic while the lock was held cannot leave SQLite half-written: an open
            // transaction is rolled back when it is dropped. So a poisoned lock is still usable.
            let mut connection = inner
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            action(&mut connection, now)
        })
        .await
    }
}

/// Checks a user name: 1 to 64 characters, each an ASCII letter, a digit or one of `._@-`.
///
/// # Errors
///
/// Returns [`StoreError::InvalidName`] naming the rule.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    check_name_rule(name).map_err(|rule| StoreError::InvalidName {
        name: name.into(),
        rule,
    })
}

/// Checks a password's length: [`MIN_PASSWORD_CHARS`] to [`MAX_PASSWORD_CHARS`] characters.
///
/// # Errors
///
/// Returns [`StoreError::InvalidPassword`] naming the rule.
pub fn validate_password(password: &str) -> Result<(), StoreError> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        return Err(StoreError::InvalidPassword {
            rule: "it is shorter than 10 characters",
        });
    }
    if length > MAX_PASSWORD_CHARS {
        return Err(StoreError::InvalidPassword {
            rule: "it is longer than 1024 characters",
        });
    }
    Ok(())
}

/// Checks group names by the user name rule and removes duplicates, keeping the first.
fn validate_groups(groups: &[String]) -> Result<Vec<String>, StoreError> {
    let mut unique: Vec<String> = Vec::with_capacity(groups.len());
    for group in groups {
        check_name_rule(group).map_err(|rule| StoreError::InvalidGroup {
            group: group.clone(),
            rule,
        })?;
        if !unique.contains(group) {
            unique.push(group.clone());
        }
    }
    Ok(unique)
}

fn check_name_rule(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("it is longer than 64 characters");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    if !name.chars().all(allowed) {
        return Err("use only ASCII letters, digits and the characters . _ @ -");
    }
    Ok(())
}

fn parse_groups(name: &str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::CorruptRecord {
        name: name.into(),
        column: "groups",
    })
}

fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    let hash = Argon2::default().hash_password(password.as_bytes(), &salt)?;
    Ok(hash.to_string())
}

fn dummy_hash(inner: &Inner) -> Result<&str, StoreError> {
    let hash = inner
        .dummy_hash
        .get_or_init(|| hash_password("password of no user, for constant-time checks"));
    hash.as_deref().map_err(|error| StoreError::Hashing(*error))
}

fn hash_session_id(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn is_session_id(id: &str) -> bool {
    id.len() == SESSION_ID_CHARS
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

fn database(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Database { action, source }
}

fn is_constraint_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

async fn run_blocking<T, F>(task: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(task)
        .await
        .map_err(|_| StoreError::TaskFailed)?
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    crate::sqlite::use_wal(connection)?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

enum MigrationError {
    TooNew { found: usize },
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrationError {
    fn from(error: rusqlite::Error) -> Self {
        MigrationError::Sqlite(error)
    }
}

/// Applies the migrations past the file's `user_version`.
///
/// The version is read inside a write transaction. A second process that opens a new file at the
/// same moment, such as the CLI adding a user while the server starts, waits for the first one's
/// migrations and then finds nothing left to do.
fn migrate(connection: &mut Connection) -> Result<(), MigrationError> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = transaction.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let found = usize::try_from(found).unwrap_or(usize::MAX);
    if found > SCHEMA_VERSION {
        return Err(MigrationError::TooNew { found });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found) {
        transaction.execute_batch(sql)?;
        transaction.pragma_update(None, "user_version", version + 1)?;
    }
    transaction.commit()?;
    Ok(())
}

/// Creates an empty file with mode 0600 on Unix, unless it exists. SQLite then opens it and
/// gives its `-wal` and `-shm` files the same mode.
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
    use twilio_access_token::FixedClock;

    use super::*;

    const PASSWORD: &str = "correct horse battery";

    fn temp_path(test: &str) -> PathBuf {
        let unique = format!(
            "twilio-token-store-{test}-{}-{}",
            std::process::id(),
            rand::rng().next_u64()
        );
        std::env::temp_dir().join(unique).join("users.sqlite3")
    }

    fn open(test: &str) -> UserStore {
        UserStore::open(&temp_path(test)).expect("the store opens")
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn concurrent_open_of_new_file() {
        // Each round races eight connections to create and migrate one new file, as the CLI and
        // a starting server can.
        for round in 0..20 {
            let path = temp_path(&format!("race-{round}"));
            let start = std::sync::Barrier::new(8);
            let results: Vec<Result<UserStore, StoreError>> = std::thread::scope(|scope| {
                let openers: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            UserStore::open(&path)
                        })
                    })
                    .collect();
                openers
                    .into_iter()
                    .map(|opener| opener.join().expect("the opener does not panic"))
                    .collect()
            });
            for result in results {
                if let Err(error) = result {
                    panic!(
                        "round {round}: {error}: {:?}",
                        std::error::Error::source(&error)
                    );
                }
            }
            let connection = Connection::open(&path).expect("the file opens");
            let version: i64 = connection
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .expect("the version reads");
            assert_eq!(version, SCHEMA_VERSION as i64);
            let _ = std::fs::remove_dir_all(path.parent().expect("a parent"));
        }
    }

    #[tokio::test]
    async fn add_and_list_users() {
        let store = open("add-list");
        store
            .add_user("bob", PASSWORD, &groups(&["staff", "staff", "ops"]))
            .await
            .expect("bob is added");
        store
            .add_user("alice@example.com", PASSWORD, &[])
            .await
            .expect("alice is added");

        let users = store.list_users().await.expect("users are listed");
        let names: Vec<&str> = users.iter().map(|user| user.name.as_str()).collect();
        assert_eq!(names, ["alice@example.com", "bob"]);
        assert_eq!(users[1].groups, groups(&["staff", "ops"]));
        assert!(users[1].created_at > 0);
    }

    #[tokio::test]
    async fn add_user_twice_rejected() {
        let store = open("add-twice");
        store.add_user("bob", PASSWORD, &[]).await.expect("added");

        let error = store
            .add_user("BOB", PASSWORD, &[])
            .await
            .expect_err("names differing only in case collide");
        assert!(matches!(error, StoreError::UserExists { ref name } if name == "BOB"));
    }

    #[tokio::test]
    async fn invalid_input_names_rule() {
        let store = open("invalid");
        let error = store
            .add_user("bob smith", PASSWORD, &[])
            .await
            .expect_err("space");
        assert_eq!(
            error.to_string(),
            "the user name \"bob smith\" is not valid: use only ASCII letters, digits and the \
             characters . _ @ -"
        );
        let error = store
            .add_user(&"a".repeat(65), PASSWORD, &[])
            .await
            .expect_err("too long");
        assert!(matches!(error, StoreError::InvalidName { rule, .. } if rule.contains("64")));
        let error = store
            .add_user("bob", "short", &[])
            .await
            .expect_err("short password");
        assert_eq!(
            error.to_string(),
            "the password is not valid: it is shorter than 10 characters"
        );
        let error = store
            .add_user("bob", &"p".repeat(1025), &[])
            .await
            .expect_err("long password");
        assert!(matches!(error, StoreError::InvalidPassword { rule } if rule.contains("1024")));
        let error = store
            .add_user("bob", PASSWORD, &groups(&["a b"]))
            .await
            .expect_err("bad group");
        assert!(matches!(error, StoreError::InvalidGroup { ref group, .. } if group == "a b"));
    }

    #[tokio::test]
    async fn verify_password_outcomes() {
        let store = open("verify");
        store.add_user("bob", PASSWORD, &[]).await.expect("added");

        assert!(
            store
                .verify_password("bob", PASSWORD)
                .await
                .expect("checked")
        );
        assert!(
            store
                .verify_password("BOB", PASSWORD)
                .await
                .expect("checked")
        );
        assert!(
            !store
                .verify_password("bob", "wrong password")
                .await
                .expect("checked")
        );
        assert!(
            !store
                .verify_password("nobody", PASSWORD)
                .await
                .expect("checked")
        );
        assert!(
            !store
                .verify_password("no body", PASSWORD)
                .await
                .expect("checked")
        );
        let long = "p".repeat(MAX_PASSWORD_CHARS + 1);
        assert!(!store.verify_password("bob", &long).await.expect("checked"));
    }

    #[tokio::test]
    async fn remove_user_deletes_sessions() {
        let store = open("remove");
        store.add_user("bob", PASSWORD, &[]).await.expect("added");
        let session = store
            .create_session("bob", Duration::from_secs(60))
            .await
            .expect("session");

        store.remove_user("Bob").await.expect("removed");

        assert_eq!(store.list_users().await.expect("listed"), []);
        let user = store
            .session_user(session.id.expose_secret())
            .await
            .expect("looked up");
        assert_eq!(user, None);
        let error = store.remove_user("bob").await.expect_err("already gone");
        assert!(matches!(error, StoreError::UserNotFound { .. }));
    }

    #[tokio::test]
    async fn set_password_deletes_sessions() {
        let store = open("passwd");
        store.add_user("bob", PASSWORD, &[]).await.expect("added");
        let session = store
            .create_session("bob", Duration::from_secs(60))
            .await
            .expect("session");

        store
            .set_password("bob", "a new password here")
            .await
            .expect("changed");

        assert!(
            !store
                .verify_password("bob", PASSWORD)
                .await
                .expect("checked")
        );
        assert!(
            store
                .verify_password("bob", "a new password here")
                .await
                .expect("checked")
        );
        let user = store
            .session_user(session.id.expose_secret())
            .await
            .expect("looked up");
        assert_eq!(user, None);
        let error = store
            .set_password("nobody", PASSWORD)
            .await
            .expect_err("no such user");
        assert!(matches!(error, StoreError::UserNotFound { .. }));
    }

    #[tokio::test]
    async fn session_returns_stored_name_and_groups() {
        let store = open("session").with_clock(Arc::new(FixedClock(1_000)));
        store
            .add_user("Bob", PASSWORD, &groups(&["staff"]))
            .await
            .expect("added");

        let session = store
            .create_session("bob", Duration::from_secs(60))
            .await
            .expect("session");

        assert_eq!(session.user, "Bob");
        assert_eq!(session.expires_at, 1_060);
        assert_eq!(session.id.expose_secret().len(), SESSION_ID_CHARS);
        let user = store
            .session_user(session.id.expose_secret())
            .await
            .expect("looked up");
        assert_eq!(
            user,
            Some(SessionUser {
                name: "Bob".into(),
                groups: groups(&["staff"]),
                expires_at: 1_060,
            })
        );
    }

    #[tokio::test]
    async fn expired_session_is_deleted() {
        let path = temp_path("expired");
        let early = UserStore::open(&path)
            .expect("opens")
            .with_clock(Arc::new(FixedClock(1_000)));
        early.add_user("bob", PASSWORD, &[]).await.expect("added");
        let session = early
            .create_session("bob", Duration::from_secs(60))
            .await
            .expect("session");
        let late = UserStore::open(&path)
            .expect("opens again")
            .with_clock(Arc::new(FixedClock(1_060)));

        let user = late
            .session_user(session.id.expose_secret())
            .await
            .expect("looked up");

        assert_eq!(user, None);
        let user = early
            .session_user(session.id.expose_secret())
            .await
            .expect("looked up");
        assert_eq!(user, None, "the expired session was deleted");
    }

    #[tokio::test]
    async fn delete_session_and_sessions_of() {
        let store = open("delete");
        store.add_user("bob", PASSWORD, &[]).await.expect("added");
        let ttl = Duration::from_secs(60);
        let first = store.create_session("bob", ttl).await.expect("session");
        let second = store.create_session("bob", ttl).await.expect("session");
        let third = store.create_session("bob", ttl).await.expect("session");

        assert!(
            store
                .delete_session(first.id.expose_secret())
                .await
                .expect("deleted")
        );
        assert!(
            !store
                .delete_session(first.id.expose_secret())
                .await
                .expect("deleted")
        );
        assert!(
            !store
                .delete_session("not a session id")
                .await
                .expect("deleted")
        );
        assert_eq!(store.delete_sessions_of("BOB").await.expect("deleted"), 2);
        for session in [second, third] {
            let user = store
                .session_user(session.id.expose_secret())
                .await
                .expect("looked up");
            assert_eq!(user, None);
        }
    }

    #[tokio::test]
    async fn create_session_for_unknown_user_fails() {
        let store = open("session-unknown");
        let error = store
            .create_session("nobody", Duration::from_secs(60))
            .await
            .expect_err("no such user");
        assert!(matches!(error, StoreError::UserNotFound { .. }));
    }

    #[tokio::test]
    async fn reopen_keeps_users_and_schema_version() {
        let path = temp_path("reopen");
        let store = UserStore::open(&path).expect("opens");
        store.add_user("bob", PASSWORD, &[]).await.expect("added");
        drop(store);

        let store = UserStore::open(&path).expect("opens again");

        assert_eq!(store.list_users().await.expect("listed").len(), 1);
        store.ping().await.expect("the store answers");
        let connection = Connection::open(&path).expect("raw open");
        let version: usize = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn newer_schema_rejected() {
        let path = temp_path("too-new");
        drop(UserStore::open(&path).expect("opens"));
        let connection = Connection::open(&path).expect("raw open");
        connection
            .pragma_update(None, "user_version", 99)
            .expect("version set");
        drop(connection);

        let error = UserStore::open(&path).expect_err("too new");

        assert!(matches!(
            error,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 1
            }
        ));
    }

    #[cfg(unix)]
    #[test]
    fn new_database_is_private() {
        use std::os::unix::fs::PermissionsExt as _;

        let path = temp_path("mode");
        drop(UserStore::open(&path).expect("opens"));

        let file = std::fs::metadata(&path).expect("file").permissions().mode();
        let parent = path.parent().expect("parent");
        let folder = std::fs::metadata(parent)
            .expect("folder")
            .permissions()
            .mode();
        assert_eq!(file & 0o777, 0o600);
        assert_eq!(folder & 0o777, 0o700);
    }

    #[test]
    fn session_id_debug_hides_value() {
        let id = SessionId::generate();
        let text = id.expose_secret().to_owned();

        let session = NewSession {
            id,
            user: "bob".into(),
            expires_at: 1,
        };

        assert_eq!(format!("{:?}", session.id), "SessionId(..)");
        assert!(!format!("{session:?}").contains(&text));
    }
}
