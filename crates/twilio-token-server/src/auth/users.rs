//! The built-in user store: users sign in with a name and password at `POST /login` and get a
//! session cookie, which the `users` provider accepts on `/token`.
//!
//! The cookie is `HttpOnly` and `SameSite=Lax`. Requests that carry it also pass the origin
//! check of [`crate::auth::origin`] against cross-site request forgery. A POST must also be
//! JSON, which a plain HTML form cannot send.

pub mod cookie;
pub mod store;
pub mod throttle;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::origin::OriginCheck;
use axum::http::HeaderMap;
use twilio_access_token::Clock;
use zeroize::Zeroizing;

pub use self::cookie::{COOKIE_KEY_ENV, CookieKey};
pub use self::store::{NewSession, SessionId, SessionUser, StoreError, UserInfo, UserStore};

use self::cookie::{CookieAttributes, find_cookie, is_valid_cookie_name, set_cookie_header};
use self::throttle::LoginThrottle;
use super::{AuthFuture, AuthProvider, AuthRequest, Principal};
use crate::config::{ConfigError, Environment, ServerSection, UsersSection};
use crate::error::ApiError;

/// The provider's name in `auth.order`.
pub const PROVIDER_NAME: &str = "users";

/// The maximum session lifetime: 400 days, the maximum `Max-Age` that Chrome keeps.
pub const MAX_SESSION_TTL_SECS: u64 = 400 * 24 * 3600;

/// Returns where the user database of a configuration lives: `database` inside `data_dir`,
/// unless `database` is absolute. A relative `data_dir` is relative to the working directory.
pub fn database_path(data_dir: &Path, section: &UsersSection) -> PathBuf {
    data_dir.join(&section.database)
}

/// Creates a folder and its missing parents, with mode 0700 on Unix for the folders it
/// creates. An existing folder is left as it is.
///
/// # Errors
///
/// Returns the I/O error when a folder cannot be created.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// The `users` provider: accepts the session cookie that `POST /login` sets, and signs users in
/// and out.
pub struct UsersProvider {
    store: UserStore,
    key: CookieKey,
    cookie_name: String,
    session_ttl: Duration,
    origin: OriginCheck,
    throttle: LoginThrottle,
    /// The start of the throttle's monotonic clock.
    started: Instant,
}

impl std::fmt::Debug for UsersProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsersProvider")
            .field("store", &self.store)
            .field("cookie_name", &self.cookie_name)
            .field("session_ttl", &self.session_ttl)
            .finish_non_exhaustive()
    }
}

impl UsersProvider {
    /// Opens the user database and loads the cookie key, as configured in `[auth.users]` and
    /// `[server]`.
    ///
    /// The data folder is created with mode 0700 when missing. The cookie key comes from
    /// [`COOKIE_KEY_ENV`] in `environment`, or from `cookie.key` in the data folder, which is
    /// generated on first start. Opening the database blocks the calling thread.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] for a session lifetime of 0 or over 400 days, or for a cookie
    /// name with characters that cookie names cannot have. Also returns one when the data
    /// folder cannot be created, the database cannot be opened or the cookie key cannot be read.
    pub fn from_config(
        server: &ServerSection,
        section: &UsersSection,
        environment: &Environment,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Result<UsersProvider, ConfigError> {
        if !(1..=MAX_SESSION_TTL_SECS).contains(&section.session_ttl_secs) {
            return Err(ConfigError::new(
                "auth.users.session_ttl_secs",
                format!(
                    "{} is out of range: use 1 to {MAX_SESSION_TTL_SECS} seconds (400 days)",
                    section.session_ttl_secs
                ),
            ));
        }
        if !is_valid_cookie_name(&section.cookie_name) {
            return Err(ConfigError::new(
                "auth.users.cookie_name",
                format!(
                    "{:?} is not a cookie name: use letters, digits and _ or -",
                    section.cookie_name
                ),
            ));
        }

        create_private_dir(&server.data_dir).map_err(|error| {
            ConfigError::new(
                "server.data_dir",
                format!(
                    "failed to create the folder {}: {error}",
                    server.data_dir.display()
                ),
            )
        })?;
        let path = database_path(&server.data_dir, section);
        let store = UserStore::open(&path)
            .map_err(|error| ConfigError::new("auth.users.database", error_chain(&error)))?
            .with_clock(clock);
        let key = CookieKey::load(environment, &server.data_dir)?;

        Ok(UsersProvider {
            store,
            key,
            cookie_name: section.cookie_name.clone(),
            session_ttl: Duration::from_secs(section.session_ttl_secs),
            origin: OriginCheck::from_server(server),
            throttle: LoginThrottle::new(),
            started: Instant::now(),
        })
    }

    /// Returns the user database.
    pub fn store(&self) -> &UserStore {
        &self.store
    }

    /// Returns the session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// Checks a name and password and creates a session.
    ///
    /// Unknown users and wrong passwords get the same error. After repeated failures for the
    /// name or the client address, attempts are rejected before the password is checked.
    ///
    /// # Errors
    ///
    /// Returns 401 `invalid_credentials`, 429 `too_many_attempts`, or 503 when the database
    /// fails.
    pub(crate) async fn sign_in(
        &self,
        name: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<NewSession, ApiError> {
        let attempt = match self.throttle.begin(name, peer, self.started.elapsed()) {
            Ok(attempt) => attempt,
            Err(wait_secs) => {
                tracing::debug!(peer = %describe_peer(peer), wait_secs, "sign-in rejected while throttled");
                let unit = if wait_secs == 1 { "second" } else { "seconds" };
                return Err(ApiError::TooManyRequests {
                    code: "too_many_attempts",
                    message: format!(
                        "too many sign-in attempts for this user name or from this address \
                         (attempts still being checked count as failed): wait {wait_secs} {unit} \
                         and try again"
                    ),
                    retry_after_secs: wait_secs,
                });
            }
        };

        let valid = self
            .store
            .verify_password(name, password)
            .await
            .map_err(store_failure)?;
        if !valid {
            // The name is not logged, because users sometimes type their password into it.
            if attempt.reaches_limit {
                tracing::warn!(
                    peer = %describe_peer(peer),
                    "repeated failed sign-ins: delaying further attempts"
                );
            }
            tracing::debug!(peer = %describe_peer(peer), "sign-in failed");
            return Err(invalid_credentials());
        }

        self.throttle.record_success(name, peer, &attempt);
        match self.store.create_session(name, self.session_ttl).await {
            Ok(session) => {
                tracing::debug!(user = %session.user, "signed in");
                Ok(session)
            }
            // The user was removed after the password check.
            Err(StoreError::UserNotFound { .. }) => Err(invalid_credentials()),
            Err(error) => Err(store_failure(error)),
        }
    }

    /// Deletes the session of the request's cookie, if it has a validly signed one.
    ///
    /// # Errors
    ///
    /// Returns 503 when the database fails.
    pub(crate) async fn sign_out(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(session_id) = self.session_id(headers) else {
            return Ok(());
        };
        self.store
            .delete_session(session_id)
            .await
            .map_err(store_failure)?;
        Ok(())
    }

    /// Returns the `Set-Cookie` value that stores a new session in the browser.
    pub(crate) fn session_cookie(
        &self,
        session: &NewSession,
        headers: &HeaderMap,
    ) -> Zeroizing<String> {
        let value = self.key.sign(session.id.expose_secret());
        let attributes = CookieAttributes {
            name: &self.cookie_name,
            max_age_secs: self.session_ttl.as_secs(),
            secure: self.is_https(headers),
        };
        set_cookie_header(attributes, &value)
    }

    /// Returns the `Set-Cookie` value that deletes the session cookie.
    pub(crate) fn cleared_cookie(&self, headers: &HeaderMap) -> Zeroizing<String> {
        let attributes = CookieAttributes {
            name: &self.cookie_name,
            max_age_secs: 0,
            secure: self.is_https(headers),
        };
        set_cookie_header(attributes, "")
    }

    /// Rejects a request from a browser on another site.
    ///
    /// # Errors
    ///
    /// Returns 403 `csrf_rejected` when `Origin` is present and is neither the server's own
    /// origin nor allowed, or when `Sec-Fetch-Site` is `cross-site` and `Origin` is not allowed.
    pub(crate) fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        self.origin.check(headers, "the session cookie")
    }

    fn is_https(&self, headers: &HeaderMap) -> bool {
        self.origin.is_https(headers)
    }

    /// Returns the session id of the request's cookie when its signature is valid.
    fn session_id<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let value = find_cookie(headers, &self.cookie_name)?;
        self.key.verify(value)
    }

    async fn principal(&self, request: &AuthRequest<'_>) -> Result<Option<Principal>, ApiError> {
        if find_cookie(request.headers, &self.cookie_name).is_none() {
            return Ok(None);
        }
        self.check_origin(request.headers)?;

        let Some(session_id) = self.session_id(request.headers) else {
            tracing::debug!("session cookie with an invalid signature");
            return Err(invalid_session());
        };
        let Some(user) = self
            .store
            .session_user(session_id)
            .await
            .map_err(store_failure)?
        else {
            return Err(invalid_session());
        };
        Ok(Some(Principal {
            identity: Some(user.name.clone()),
            groups: user.groups,
            method: PROVIDER_NAME,
            subject: user.name,
            may_act_for: None,
        }))
    }
}

impl AuthProvider for UsersProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a> {
        Box::pin(self.principal(request))
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized(
        "invalid_credentials",
        "the user name or password is not correct",
    )
}

fn invalid_session() -> ApiError {
    ApiError::unauthorized(
        "invalid_session",
        "your session has expired or is not valid: sign in again",
    )
}

/// Logs a database failure and returns the error sent to the client.
fn store_failure(error: StoreError) -> ApiError {
    tracing::error!(error = %error_chain(&error), "user database failed");
    match error {
        StoreError::Database { .. } | StoreError::TaskFailed => ApiError::Unavailable {
            message: "the user database is unavailable: try again later".into(),
        },
        _ => ApiError::Internal,
    }
}

/// Joins an error and its causes with `: `.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Formats the client address for the log, or `unknown` when the connection has none, such as
/// a router mounted without connect info.
fn describe_peer(peer: Option<IpAddr>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), |address| address.to_string())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use rand::RngCore as _;
    use twilio_access_token::SystemClock;

    use super::*;

    fn provider(configure: impl FnOnce(&mut ServerSection)) -> UsersProvider {
        let data_dir = std::env::temp_dir().join(format!(
            "twilio-token-users-{}-{}",
            std::process::id(),
            rand::rng().next_u64()
        ));
        let mut server = ServerSection {
            data_dir,
            ..ServerSection::default()
        };
        configure(&mut server);
        UsersProvider::from_config(
            &server,
            &UsersSection::default(),
            &Environment::new(),
            Arc::new(SystemClock),
        )
        .expect("provider")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn code(result: Result<(), ApiError>) -> Option<&'static str> {
        result.err().map(|error| error.code())
    }

    #[test]
    fn origin_check_outcomes() {
        let provider = provider(|server| {
            server.allowed_origins = vec!["https://app.example.com".into()];
        });
        let own = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ];
        let listed = [("host", "api.local"), ("origin", "https://APP.example.com")];
        let foreign = [("host", "api.local"), ("origin", "https://evil.example")];
        let null = [("host", "api.local"), ("origin", "null")];
        let other_port = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:9090"),
        ];
        let https_own = [("host", "api.local"), ("origin", "https://api.local")];
        let cross_site = [("sec-fetch-site", "cross-site")];
        let cross_listed = [
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://app.example.com"),
        ];
        let same_site = [("sec-fetch-site", "same-site")];

        assert_eq!(code(provider.check_origin(&headers(&[]))), None);
        assert_eq!(code(provider.check_origin(&headers(&own))), None);
        assert_eq!(code(provider.check_origin(&headers(&listed))), None);
        assert_eq!(code(provider.check_origin(&headers(&cross_listed))), None);
        assert_eq!(code(provider.check_origin(&headers(&same_site))), None);
        for rejected in [&foreign[..], &null, &other_port, &https_own, &cross_site] {
            assert_eq!(
                code(provider.check_origin(&headers(rejected))),
                Some("csrf_rejected"),
                "{rejected:?}"
            );
        }
    }

    #[test]
    fn forwarded_proto_trusted_only_when_configured() {
        let trusting = provider(|server| server.trust_forwarded_proto = true);
        let default = provider(|_| {});
        let https = headers(&[
            ("host", "api.example.com"),
            ("origin", "https://api.example.com"),
            ("x-forwarded-proto", "https"),
        ]);

        assert_eq!(code(trusting.check_origin(&https)), None);
        assert_eq!(code(default.check_origin(&https)), Some("csrf_rejected"));
        assert!(trusting.is_https(&https));
        assert!(!default.is_https(&https));
    }

    #[test]
    fn invalid_settings_rejected() {
        let server = ServerSection {
            data_dir: std::env::temp_dir().join("twilio-token-users-never-created"),
            ..ServerSection::default()
        };
        let cases = [
            (
                UsersSection {
                    session_ttl_secs: 0,
                    ..UsersSection::default()
                },
                "auth.users.session_ttl_secs",
            ),
            (
                UsersSection {
                    cookie_name: "my session".into(),
                    ..UsersSection::default()
                },
                "auth.users.cookie_name",
            ),
        ];
        for (section, key) in cases {
            let error = UsersProvider::from_config(
                &server,
                &section,
                &Environment::new(),
                Arc::new(SystemClock),
            )
            .expect_err("invalid");
            assert_eq!(error.key, key);
        }
    }

    #[test]
    fn provider_debug_hides_key() {
        let debug = format!("{:?}", provider(|_| {}));
        assert!(debug.contains("twilio_token_session"));
        assert!(!debug.contains("key"));
    }
}
