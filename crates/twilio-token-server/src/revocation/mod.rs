//! Revocation: deny lists by identity and by `jti`.
//!
//! An identity entry revokes the identity's tokens issued before a time, or all of them when it
//! has no time. While an identity entry covers the present, the server issues no new token for
//! it (403 `identity_revoked`). A `jti` entry revokes one token.
//!
//! The lists live in a [`RevocationStore`]: SQLite in the data folder (one host), or Redis
//! (shared by replicas). Each process keeps a copy, [`RevocationList`], that it reloads every
//! `refresh_secs`, so checks cost no I/O and a new entry takes effect within that time.
//! [`Revocations::hook`] gives the same copy to a [`Verifier`](twilio_access_token::Verifier)
//! as its [`RevocationCheck`].

mod redis_store;
mod sqlite;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Deserialize;
use twilio_access_token::{Claims, RevocationCheck};

use crate::config::ConfigError;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::redis_conn::{RedisConn, parse_url};

pub use self::redis_store::RedisRevocations;
pub use self::sqlite::SqliteRevocations;

/// `[revocation]`: the store of the deny lists. Absent means the server reads no deny list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationSection {
    /// `sqlite` (the default, a file in `server.data_dir`) or `redis`.
    pub store: RevocationStoreKind,
    /// SQLite file, relative to `server.data_dir` unless absolute. Default
    /// `revocations.sqlite3`.
    pub database: PathBuf,
    /// The Redis URL when `store = "redis"`.
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys. Default `twilio-token`.
    pub key_prefix: String,
    /// Seconds between two reloads of the lists, 1 to 3600. Default 5.
    pub refresh_secs: u64,
}

impl Default for RevocationSection {
    fn default() -> Self {
        RevocationSection {
            store: RevocationStoreKind::Sqlite,
            database: PathBuf::from("revocations.sqlite3"),
            redis_url: None,
            key_prefix: "twilio-token".into(),
            refresh_secs: 5,
        }
    }
}

/// The kind of store of the deny lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationStoreKind {
    /// A SQLite file in the data folder.
    Sqlite,
    /// Redis, shared by replicas.
    Redis,
}

/// An identity's entry: its tokens issued before `before` are revoked, all of them when
/// `before` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityEntry {
    /// Tokens issued (`iat`) before this Unix time are revoked; `None` revokes every token, now
    /// and later.
    pub before: Option<u64>,
    /// When the entry was written, in Unix seconds.
    pub revoked_at: u64,
}

impl IdentityEntry {
    /// True when a token issued at `issued_at` is revoked. A token without `iat` is revoked,
    /// because nothing shows it was issued after the entry's time.
    pub fn revokes(&self, issued_at: Option<u64>) -> bool {
        match (self.before, issued_at) {
            (None, _) | (Some(_), None) => true,
            (Some(before), Some(issued_at)) => issued_at < before,
        }
    }
}

/// How long a `jti` entry is kept: 25 hours. A token lives at most 24 hours and is revoked
/// after it was issued, so it has expired 24 hours after the revocation. The extra hour covers
/// verifier leeway and clock skew.
///
/// An identity entry with a `before` time is kept as long after that time, because every token
/// it covers was issued before it. An entry without `before` is kept until it is removed.
pub const JTI_ENTRY_SECS: u64 = 25 * 3600;

/// A copy of the deny lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    /// Identity entries by identity, compared exactly.
    pub identities: HashMap<String, IdentityEntry>,
    /// Revoked `jti` values, with the Unix time each was revoked. Writing a new entry deletes
    /// the entries older than [`JTI_ENTRY_SECS`], and writing an identity entry deletes the
    /// identity entries whose `before` is that much in the past.
    pub jtis: HashMap<String, u64>,
}

impl RevocationList {
    /// Returns why a token with these claims is revoked, or `None`.
    pub fn reason(
        &self,
        identity: &str,
        jti: Option<&str>,
        issued_at: Option<u64>,
    ) -> Option<String> {
        if let Some(entry) = self.identities.get(identity)
            && entry.revokes(issued_at)
        {
            return Some(match entry.before {
                None => format!("every token of the identity {identity:?} is revoked"),
                Some(before) => format!(
                    "tokens of the identity {identity:?} issued before {before} are revoked"
                ),
            });
        }
        if let Some(jti) = jti
            && self.jtis.contains_key(jti)
        {
            return Some(format!("the token {jti} is revoked"));
        }
        None
    }
}

/// A failure of the revocation store.
#[derive(Debug)]
#[non_exhaustive]
pub enum RevocationError {
    /// The SQLite file could not be opened or created.
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A read or write failed.
    Store {
        /// The operation that failed, such as `reading the revocation list`.
        action: &'static str,
        /// The cause, as text, which never contains a secret.
        cause: String,
    },
}

impl fmt::Display for RevocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevocationError::Open { path, .. } => {
                write!(f, "cannot open the revocation database {}", path.display())
            }
            RevocationError::Store { action, cause } => write!(f, "{action} failed: {cause}"),
        }
    }
}

impl std::error::Error for RevocationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RevocationError::Open { source, .. } => Some(source.as_ref()),
            RevocationError::Store { .. } => None,
        }
    }
}

/// The store of the deny lists.
#[derive(Debug)]
pub enum RevocationStore {
    /// A SQLite file.
    Sqlite(SqliteRevocations),
    /// Redis.
    Redis(Box<RedisRevocations>),
}

impl RevocationStore {
    /// Opens the store `[revocation]` names. A SQLite file (and its folder) is created when
    /// missing; Redis is first called by the first operation.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for an invalid section, or one naming the file that cannot be opened.
    pub fn open(
        section: &RevocationSection,
        data_dir: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ConfigError> {
        if !(1..=3600).contains(&section.refresh_secs) {
            return Err(ConfigError::new(
                "revocation.refresh_secs",
                format!(
                    "{} is out of range: use 1 to 3600 seconds",
                    section.refresh_secs
                ),
            ));
        }
        if section.key_prefix.is_empty() {
            return Err(ConfigError::new(
                "revocation.key_prefix",
                "is empty: leave it out for the default twilio-token, or name your application",
            ));
        }
        match (section.store, &section.redis_url) {
            (RevocationStoreKind::Sqlite, Some(_)) => Err(ConfigError::new(
                "revocation.redis_url",
                "is set but store is \"sqlite\": set store = \"redis\" to share the lists, or \
                 remove redis_url",
            )),
            (RevocationStoreKind::Sqlite, None) => {
                let path = data_dir.join(&section.database);
                SqliteRevocations::open(&path)
                    .map(RevocationStore::Sqlite)
                    .map_err(|error| {
                        let cause = std::error::Error::source(&error)
                            .map(|cause| format!(": {cause}"))
                            .unwrap_or_default();
                        ConfigError::new("revocation.database", format!("{error}{cause}"))
                    })
            }
            (RevocationStoreKind::Redis, None) => Err(ConfigError::new(
                "revocation.redis_url",
                "is missing: store = \"redis\" needs a URL such as redis://127.0.0.1:6379/0",
            )),
            (RevocationStoreKind::Redis, Some(url)) => {
                let client = parse_url("revocation.redis_url", url)?;
                let conn = RedisConn::new(
                    client,
                    "revocation",
                    "the last revocation list read is kept",
                    metrics,
                );
                Ok(RevocationStore::Redis(Box::new(RedisRevocations::new(
                    conn,
                    &section.key_prefix,
                ))))
            }
        }
    }

    /// Revokes `identity`'s tokens issued before `before`, or all of them.
    ///
    /// # Errors
    ///
    /// Returns [`RevocationError::Store`] when the store fails.
    pub async fn revoke_identity(
        &self,
        identity: &str,
        before: Option<u64>,
        now: u64,
    ) -> Result<(), RevocationError> {
        let entry = IdentityEntry {
            before,
            revoked_at: now,
        };
        match self {
            RevocationStore::Sqlite(store) => store.revoke_identity(identity, entry).await,
            RevocationStore::Redis(store) => store.revoke_identity(identity, entry).await,
        }
    }

    /// Revokes the token with this `jti`.
    ///
    /// # Errors
    ///
    /// Returns [`RevocationError::Store`] when the store fails.
    pub async fn revoke_jti(&self, jti: &str, now: u64) -> Result<(), RevocationError> {
        match self {
            RevocationStore::Sqlite(store) => store.revoke_jti(jti, now).await,
            RevocationStore::Redis(store) => store.revoke_jti(jti, now).await,
        }
    }

    /// Removes an identity's entry; returns false when there was none.
    ///
    /// # Errors
    ///
    /// Returns [`RevocationError::Store`] when the store fails.
    pub async fn remove_identity(&self, identity: &str) -> Result<bool, RevocationError> {
        match self {
            RevocationStore::Sqlite(store) => store.remove_identity(identity).await,
            RevocationStore::Redis(store) => store.remove_identity(identity).await,
        }
    }

    /// Removes a `jti` entry; returns false when there was none.
    ///
    /// # Errors
    ///
    /// Returns [`RevocationError::Store`] when the store fails.
    pub async fn remove_jti(&self, jti: &str) -> Result<bool, RevocationError> {
        match self {
            RevocationStore::Sqlite(store) => store.remove_jti(jti).await,
            RevocationStore::Redis(store) => store.remove_jti(jti).await,
        }
    }

    /// Reads both lists.
    ///
    /// # Errors
    ///
    /// Returns [`RevocationError::Store`] when the store fails.
    pub async fn load(&self) -> Result<RevocationList, RevocationError> {
        match self {
            RevocationStore::Sqlite(store) => store.load().await,
            RevocationStore::Redis(store) => store.load().await,
        }
    }
}

/// The deny lists of a running server: the store and the copy requests are checked against.
pub struct Revocations {
    section: RevocationSection,
    data_dir: PathBuf,
    store: RevocationStore,
    list: ArcSwap<RevocationList>,
    loaded: tokio::sync::OnceCell<()>,
    refreshing: AtomicBool,
    /// True after a failed reload, until one succeeds: the outage is logged once.
    failing: AtomicBool,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for Revocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocations")
            .field("store", &self.section.store)
            .field("refresh_secs", &self.section.refresh_secs)
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// Opens the store of `[revocation]`. The lists are read by the first check, or by
    /// [`Revocations::refresh`].
    ///
    /// # Errors
    ///
    /// As [`RevocationStore::open`].
    pub fn from_config(
        section: &RevocationSection,
        data_dir: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ConfigError> {
        let store = RevocationStore::open(section, data_dir, Arc::clone(&metrics))?;
        Ok(Revocations {
            section: section.clone(),
            data_dir: data_dir.to_owned(),
            store,
            list: ArcSwap::default(),
            loaded: tokio::sync::OnceCell::new(),
            refreshing: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            metrics,
        })
    }

    /// True when these revocations were built from the same section and data folder, so a
    /// reload can keep them.
    pub fn same_config(&self, section: &RevocationSection, data_dir: &Path) -> bool {
        &self.section == section && self.data_dir == data_dir
    }

    /// Returns the store, for writing entries.
    pub fn store(&self) -> &RevocationStore {
        &self.store
    }

    /// Returns the current copy of the lists.
    pub fn list(&self) -> Arc<RevocationList> {
        self.list.load_full()
    }

    /// Reads the lists from the store and replaces the copy. On failure the old copy is kept,
    /// and the first failure of a series is logged.
    ///
    /// # Errors
    ///
    /// Returns the store's error.
    pub async fn refresh(&self) -> Result<(), RevocationError> {
        match self.store.load().await {
            Ok(list) => {
                self.metrics
                    .set_revocations("identity", list.identities.len());
                self.metrics.set_revocations("jti", list.jtis.len());
                self.list.store(Arc::new(list));
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!("the revocation list can be read again");
                }
                Ok(())
            }
            Err(error) => {
                if !self.failing.swap(true, Ordering::AcqRel)
                    && matches!(self.store, RevocationStore::Sqlite(_))
                {
                    tracing::error!(%error, "cannot read the revocation list, keeping the last one read");
                }
                Err(error)
            }
        }
    }

    /// Starts a task that calls [`Revocations::refresh`] every `refresh_secs` until `self` is
    /// dropped. A second call does nothing. Needs a Tokio runtime.
    pub fn spawn_refresh(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = Duration::from_secs(self.section.refresh_secs);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(revocations) = weak.upgrade() else {
                    break;
                };
                let _ = revocations.refresh().await;
            }
        });
    }

    /// Refuses a new token for `identity` while an entry covers the present.
    ///
    /// The first call reads the lists and starts the refresh task.
    ///
    /// # Errors
    ///
    /// Returns 403 `identity_revoked`, or 503 `unavailable` when the lists have never been read.
    pub async fn check_new_token(
        self: &Arc<Self>,
        identity: &str,
        now: u64,
    ) -> Result<(), ApiError> {
        self.ensure_loaded().await?;
        let list = self.list.load();
        let Some(entry) = list.identities.get(identity) else {
            return Ok(());
        };
        if !entry.revokes(Some(now)) {
            return Ok(());
        }
        let message = match entry.before {
            None => format!(
                "tokens for the identity {identity:?} are revoked: ask the operator to lift the \
                 revocation"
            ),
            Some(before) => format!(
                "tokens for the identity {identity:?} are revoked until {before} (Unix time): \
                 try again after that or ask the operator"
            ),
        };
        Err(ApiError::forbidden("identity_revoked", message))
    }

    async fn ensure_loaded(self: &Arc<Self>) -> Result<(), ApiError> {
        if self.loaded.initialized() {
            return Ok(());
        }
        self.loaded
            .get_or_try_init(|| async {
                self.refresh().await?;
                self.spawn_refresh();
                Ok::<(), RevocationError>(())
            })
            .await
            .map(|_| ())
            .map_err(|error| {
                tracing::error!(%error, "cannot read the revocation list");
                ApiError::Unavailable {
                    message: "the revocation list cannot be read: try again in a few seconds"
                        .into(),
                }
            })
    }

    /// Returns a [`RevocationCheck`] for a [`Verifier`](twilio_access_token::Verifier), backed by this
    /// copy of the lists. Call [`Revocations::refresh`] once and [`Revocations::spawn_refresh`]
    /// before verifying, so the copy is current.
    pub fn hook(self: &Arc<Self>) -> RevocationHook {
        RevocationHook {
            revocations: Arc::clone(self),
        }
    }
}

/// The [`RevocationCheck`] of [`Revocations::hook`].
#[derive(Debug, Clone)]
pub struct RevocationHook {
    revocations: Arc<Revocations>,
}

impl RevocationCheck for RevocationHook {
    fn check(&self, claims: &Claims) -> Option<String> {
        self.revocations.list.load().reason(
            &claims.identity,
            claims.jti.as_deref(),
            claims.issued_at,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_entry_with_time_revokes_only_older_tokens() {
        let entry = IdentityEntry {
            before: Some(1_000),
            revoked_at: 900,
        };

        assert!(entry.revokes(Some(999)));
        assert!(!entry.revokes(Some(1_000)));
        assert!(entry.revokes(None));
    }

    #[test]
    fn identity_entry_without_time_revokes_everything() {
        let entry = IdentityEntry {
            before: None,
            revoked_at: 900,
        };

        assert!(entry.revokes(Some(u64::MAX)));
    }

    #[test]
    fn list_reason_names_identity_or_jti() {
        let mut list = RevocationList::default();
        list.identities.insert(
            "alice".into(),
            IdentityEntry {
                before: Some(100),
                revoked_at: 50,
            },
        );
        list.jtis.insert("SKx-5".into(), 50);

        assert_eq!(
            list.reason("alice", None, Some(99)).as_deref(),
            Some("tokens of the identity \"alice\" issued before 100 are revoked")
        );
        assert_eq!(list.reason("alice", None, Some(100)), None);
        assert_eq!(
            list.reason("bob", Some("SKx-5"), Some(1)).as_deref(),
            Some("the token SKx-5 is revoked")
        );
        assert_eq!(list.reason("bob", Some("SKx-6"), Some(1)), None);
    }
}
