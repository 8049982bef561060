//! Reloading the configuration of a running server without dropping a request.
//!
//! A [`Reloader`] holds the current [`AppState`] and the router built from it. A reload builds
//! a complete new state from the configuration, through the same validation as a start. Only
//! when that succeeds does it swap in the new router, in one atomic step: requests already
//! running finish with the old state, and the next request, on any connection, gets the new
//! one. A configuration that fails validation is rejected, the running one is kept, and the log
//! says which key is wrong.
//!
//! [`Reloader::watch`] reloads on `SIGHUP` and when the configuration file's contents change.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use sha2::{Digest as _, Sha256};

use crate::app::app;
use crate::config::ConfigError;
use crate::state::AppState;

/// Builds the new state from the current one; usually reads the file and the environment and
/// calls [`AppState::reconfigure`].
type Load = dyn Fn(&AppState) -> Result<AppState, ConfigError> + Send + Sync;

/// The current state and router of a server that can reload its configuration.
pub struct Reloader {
    state: ArcSwap<AppState>,
    routers: Arc<ArcSwap<Router>>,
    load: Box<Load>,
    /// One reload at a time, so two triggers cannot interleave.
    running: tokio::sync::Mutex<()>,
    /// The address the process listens on, and its metrics listener when it has one: only a
    /// restart changes them.
    listening: (std::net::SocketAddr, Option<String>),
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("state", &self.state.load())
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Starts with `state`; `load` builds each new state from the running one.
    pub fn new(
        state: Arc<AppState>,
        load: impl Fn(&AppState) -> Result<AppState, ConfigError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        let router = app(Arc::clone(&state));
        let metrics = &state.metrics_config;
        let listening = (
            state.listen,
            metrics.listen.clone().filter(|_| metrics.enabled),
        );
        Arc::new(Reloader {
            listening,
            state: ArcSwap::new(state),
            routers: Arc::new(ArcSwap::from_pointee(router)),
            load: Box::new(load),
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// The router to serve with [`run_reloadable`](crate::run_reloadable).
    pub fn routers(&self) -> Arc<ArcSwap<Router>> {
        Arc::clone(&self.routers)
    }

    /// The state in use now.
    pub fn state(&self) -> Arc<AppState> {
        self.state.load_full()
    }

    /// Builds a new state and, when it is valid, serves it from the next request on.
    /// `trigger`, such as `SIGHUP`, goes into the log line.
    ///
    /// # Errors
    ///
    /// Returns the [`ConfigError`] of a rejected configuration, after logging it; the running
    /// configuration stays in use.
    pub async fn reload(self: &Arc<Self>, trigger: &str) -> Result<(), ConfigError> {
        let _running = self.running.lock().await;
        let current = self.state();
        let this = Arc::clone(self);
        let previous = Arc::clone(&current);
        // Loading reads files and may open SQLite, so it runs off the request threads.
        let built = tokio::task::spawn_blocking(move || (this.load)(&previous))
            .await
            .unwrap_or_else(|_| {
                Err(ConfigError::new(
                    "reload",
                    "the reload task panicked: the log has the details",
                ))
            });
        let reject = |error: ConfigError| {
            current.metrics.config_reload("rejected");
            tracing::error!(
                trigger,
                key = %error.key,
                reason = %error.message,
                "configuration reload rejected, the running configuration stays in use"
            );
            Err(error)
        };
        let state = match built {
            Ok(state) => Arc::new(state),
            Err(error) => return reject(error),
        };
        // A new audit sink is opened before it replaces the running one, as at start-up, so
        // that a wrong path or an unreachable database rejects the reload instead of failing
        // every token request after it.
        if !Arc::ptr_eq(&state.audit, &current.audit) {
            let audit = Arc::clone(&state.audit);
            let opened = tokio::task::spawn_blocking(move || audit.start())
                .await
                .unwrap_or_else(|_| {
                    Err(crate::audit::AuditError::new(
                        "audit",
                        "the task that opens the audit log panicked",
                    ))
                });
            if let Err(error) = opened {
                return reject(ConfigError::new(
                    "audit",
                    format!(
                        "failed to open the audit log ({}): {}: fix [audit] or the database",
                        state.audit.describe(),
                        error.message
                    ),
                ));
            }
        }

        // Compared with the addresses of the start, not of the last reload, because the
        // listeners stay where the process started them.
        let (listen, metrics_listen) = &self.listening;
        if state.listen != *listen {
            tracing::warn!(
                running = %listen,
                configured = %state.listen,
                "server.listen changed: the server keeps its address until it restarts"
            );
        }
        let metrics = &state.metrics_config;
        if metrics.listen.clone().filter(|_| metrics.enabled) != *metrics_listen {
            tracing::warn!(
                "metrics.listen or metrics.enabled changed: the separate metrics listener \
                 keeps running as it started until the server restarts"
            );
        }
        if state.audit.describe() != current.audit.describe()
            || state.audit.fail_open() != current.audit.fail_open()
        {
            tracing::warn!(
                running = %current.audit.describe(),
                configured = %state.audit.describe(),
                fail_open = state.audit.fail_open(),
                "the audit log changes with this reload"
            );
        }
        let signing_keys: Vec<String> = {
            let mut keys: Vec<String> = state
                .profiles
                .values()
                .map(|profile| format!("{}={}", profile.name, profile.signing_key().0))
                .collect();
            keys.sort();
            keys
        };
        self.routers.store(Arc::new(app(Arc::clone(&state))));
        self.state.store(state);
        current.metrics.config_reload("applied");
        tracing::info!(trigger, ?signing_keys, "configuration reloaded");
        Ok(())
    }

    /// Reloads on `SIGHUP`, and when the contents of `file` change (checked every `poll`),
    /// until the returned task is aborted. Needs a Tokio runtime.
    ///
    /// A change is noticed by the SHA-256 of the file's contents, so a rewrite with the same
    /// text does nothing, and a file that a change leaves invalid is rejected once, not at every
    /// poll.
    pub fn watch(
        self: &Arc<Self>,
        file: Option<PathBuf>,
        poll: Duration,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let this = Arc::clone(self);
        Ok(tokio::spawn(async move {
            let mut seen = match &file {
                Some(path) => digest(path).await,
                None => None,
            };
            let mut ticks = tokio::time::interval(poll);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                #[cfg(unix)]
                let signalled = async { hangup.recv().await };
                #[cfg(not(unix))]
                let signalled = std::future::pending::<Option<()>>();
                tokio::select! {
                    received = signalled => {
                        if received.is_none() {
                            break;
                        }
                        if let Some(path) = &file {
                            seen = digest(path).await;
                        }
                        let _ = this.reload("SIGHUP").await;
                    }
                    _ = ticks.tick(), if file.is_some() => {
                        let Some(path) = &file else { continue };
                        let now = digest(path).await;
                        if now.is_some() && now != seen {
                            seen = now;
                            let _ = this.reload("file change").await;
                        }
                    }
                }
            }
        }))
    }
}

/// The SHA-256 of a file's contents, or `None` when it cannot be read (such as in the middle
/// of an editor's rename).
async fn digest(path: &std::path::Path) -> Option<[u8; 32]> {
    let bytes = tokio::fs::read(path).await.ok()?;
    Some(Sha256::digest(&bytes).into())
}
