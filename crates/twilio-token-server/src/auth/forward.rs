//! Asks the app's own "who am I" endpoint who the caller is.
//!
//! For apps that keep their own session: the request's `Cookie` and `Authorization` headers,
//! and no other, are sent with `GET` to the one configured URL. A 2xx response with a JSON body
//! gives the identity and groups from configured fields. 401 or 403 means the caller is not
//! signed in (401 here). Any other response, a timeout or a connection failure is a 503 with a
//! log line that names the cause.
//!
//! Answers are remembered for a short time, keyed by the SHA-256 of the forwarded headers, so
//! neither the cookie nor the `Authorization` value is kept in memory after the request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::{AUTHORIZATION, COOKIE};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::oidc::lookup_path;
use super::{AuthFuture, AuthProvider, AuthRequest, Principal};
use crate::config::ConfigError;
use crate::error::ApiError;

/// Maximum size of a "who am I" response that is read, in bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// `[auth.forward]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSection {
    /// The app's "who am I" endpoint, such as `http://127.0.0.1:3000/api/me`.
    pub url: String,
    /// Milliseconds to wait for its response. Default 2000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The answer's field holding the identity; dots walk into nested objects, such as
    /// `user.id`. A number is used as text. Default `id`.
    #[serde(default = "default_identity_field")]
    pub identity_field: String,
    /// The answer's field holding the groups: an array of strings. Default: no groups.
    pub groups_field: Option<String>,
    /// Text put before every identity, such as `app:`. Default none.
    #[serde(default)]
    pub identity_prefix: String,
    /// Seconds an answer is remembered. 0 turns the cache off. Default 10.
    #[serde(default = "default_cache_secs")]
    pub cache_secs: u64,
    /// Most answers remembered at once. Default 10000.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
}

fn default_timeout_ms() -> u64 {
    2000
}

fn default_identity_field() -> String {
    "id".into()
}

fn default_cache_secs() -> u64 {
    10
}

fn default_cache_entries() -> usize {
    10_000
}

struct Remembered {
    principal: Principal,
    until: Instant,
}

/// The `forward` provider.
pub struct ForwardProvider {
    url: String,
    timeout: Duration,
    identity_field: String,
    groups_field: Option<String>,
    identity_prefix: String,
    cache_for: Duration,
    cache_entries: usize,
    client: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], Remembered>>,
}

impl std::fmt::Debug for ForwardProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardProvider")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ForwardProvider {
    /// Validates `[auth.forward]`.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] naming the key for a URL that is not http or https, or that
    /// carries a user name, password, query or fragment; a zero timeout; an empty field name.
    pub fn from_config(section: &ForwardSection) -> Result<Self, ConfigError> {
        let url = reqwest::Url::parse(&section.url).map_err(|error| {
            ConfigError::new(
                "auth.forward.url",
                format!("{:?} is not a URL ({error}): write the app's who-am-I endpoint, such as http://127.0.0.1:3000/api/me", section.url),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ConfigError::new(
                "auth.forward.url",
                format!("{:?} is not an http or https URL", section.url),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(ConfigError::new(
                "auth.forward.url",
                "remove the user name, password and fragment: the server forwards only the \
                 caller's Cookie and Authorization headers",
            ));
        }
        if section.timeout_ms == 0 {
            return Err(ConfigError::new(
                "auth.forward.timeout_ms",
                "must be at least 1 millisecond",
            ));
        }
        if section.identity_field.is_empty() {
            return Err(ConfigError::new(
                "auth.forward.identity_field",
                "is empty: name the answer's field that holds the user's id",
            ));
        }
        if section.groups_field.as_deref() == Some("") {
            return Err(ConfigError::new(
                "auth.forward.groups_field",
                "is empty: name the answer's field that lists groups, or leave it out",
            ));
        }
        if section.cache_secs > 0 && section.cache_entries == 0 {
            return Err(ConfigError::new(
                "auth.forward.cache_entries",
                "must be at least 1 while cache_secs is above 0",
            ));
        }
        let timeout = Duration::from_millis(section.timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|error| {
                ConfigError::new(
                    "auth.forward",
                    format!("cannot build the HTTP client: {error}"),
                )
            })?;
        Ok(ForwardProvider {
            url: section.url.clone(),
            timeout,
            identity_field: section.identity_field.clone(),
            groups_field: section.groups_field.clone(),
            identity_prefix: section.identity_prefix.clone(),
            cache_for: Duration::from_secs(section.cache_secs),
            cache_entries: section.cache_entries,
            client,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn recall(&self, key: &[u8; 32]) -> Option<Principal> {
        if self.cache_for.is_zero() {
            return None;
        }
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(key)
            .filter(|entry| entry.until > Instant::now())
            .map(|entry| entry.principal.clone())
    }

    fn remember(&self, key: [u8; 32], principal: &Principal) {
        if self.cache_for.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= self.cache_entries {
            cache.retain(|_, entry| entry.until > now);
            if cache.len() >= self.cache_entries {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Remembered {
                principal: principal.clone(),
                until: now + self.cache_for,
            },
        );
    }

    async fn ask(
        &self,
        cookie: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let mut request = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        if let Some(authorization) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let unavailable = || ApiError::Unavailable {
            message: "the app's sign-in check is unavailable: try again later".into(),
        };
        let mut response = request.send().await.map_err(|error| {
            if error.is_timeout() {
                tracing::error!(
                    url = %self.url,
                    timeout_ms = self.timeout.as_millis(),
                    "forward: the app's who-am-I endpoint did not answer in time"
                );
            } else {
                tracing::error!(
                    url = %self.url,
                    connect = error.is_connect(),
                    "forward: the app's who-am-I endpoint could not be reached"
                );
            }
            unavailable()
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ApiError::unauthorized(
                "not_signed_in",
                format!(
                    "the app does not recognise this session (its who-am-I endpoint answered \
                     {}): sign in to the app first",
                    status.as_u16()
                ),
            ));
        }
        if !status.is_success() {
            tracing::error!(
                url = %self.url,
                status = status.as_u16(),
                "forward: the app's who-am-I endpoint answered with an unexpected status; \
                 expected 2xx, 401 or 403"
            );
            return Err(unavailable());
        }
        let mut body = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|_| {
                tracing::error!(url = %self.url, "forward: reading the who-am-I response failed");
                unavailable()
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                tracing::error!(
                    url = %self.url,
                    limit = MAX_ANSWER_BYTES,
                    "forward: the who-am-I response is too large"
                );
                return Err(unavailable());
            }
            body.extend_from_slice(&chunk);
        }
        let Ok(answer) = serde_json::from_slice::<Value>(&body) else {
            tracing::error!(
                url = %self.url,
                status = status.as_u16(),
                "forward: the who-am-I response is not JSON"
            );
            return Err(unavailable());
        };
        let identity = match lookup_path(&answer, &self.identity_field) {
            Some(Value::String(text)) if !text.is_empty() => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                tracing::error!(
                    url = %self.url,
                    field = %self.identity_field,
                    "forward: the who-am-I response has no usable identity field; set \
                     auth.forward.identity_field to the field that holds the user's id"
                );
                return Err(unavailable());
            }
        };
        let groups = match &self.groups_field {
            None => Vec::new(),
            Some(field) => match lookup_path(&answer, field) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(values)) => values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                Some(_) => {
                    tracing::error!(
                        url = %self.url,
                        field = %field,
                        "forward: the who-am-I response's groups field is not an array of strings"
                    );
                    return Err(unavailable());
                }
            },
        };
        let identity = format!("{}{identity}", self.identity_prefix);
        Ok(Principal {
            identity: Some(identity.clone()),
            groups,
            method: "forward",
            subject: identity,
            may_act_for: None,
        })
    }
}

/// Hashes the forwarded headers into the cache key. A separator byte and a presence marker per
/// header keep different header combinations apart.
fn cache_key(cookie: Option<&str>, authorization: Option<&str>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [cookie, authorization] {
        match part {
            Some(text) => {
                hasher.update([1u8]);
                hasher.update((text.len() as u64).to_be_bytes());
                hasher.update(text.as_bytes());
            }
            None => hasher.update([0u8]),
        }
    }
    hasher.finalize().into()
}

impl AuthProvider for ForwardProvider {
    fn name(&self) -> &'static str {
        "forward"
    }

    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a> {
        Box::pin(async move {
            let cookies: Vec<&str> = request
                .headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect();
            let cookie = (!cookies.is_empty()).then(|| cookies.join("; "));
            let authorization = request
                .headers
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok());
            if cookie.is_none() && authorization.is_none() {
                return Ok(None);
            }
            let key = cache_key(cookie.as_deref(), authorization);
            if let Some(principal) = self.recall(&key) {
                return Ok(Some(principal));
            }
            let principal = self.ask(cookie.as_deref(), authorization).await?;
            self.remember(key, &principal);
            Ok(Some(principal))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_separate_header_combinations() {
        assert_ne!(cache_key(Some("a"), None), cache_key(None, Some("a")));
        assert_ne!(
            cache_key(Some("ab"), Some("c")),
            cache_key(Some("a"), Some("bc"))
        );
        assert_eq!(
            cache_key(Some("a"), Some("b")),
            cache_key(Some("a"), Some("b"))
        );
    }

    fn section(url: &str) -> ForwardSection {
        ForwardSection {
            url: url.into(),
            timeout_ms: 1000,
            identity_field: "id".into(),
            groups_field: None,
            identity_prefix: String::new(),
            cache_secs: 10,
            cache_entries: 10,
        }
    }

    #[test]
    fn cache_is_bounded() {
        let mut section = section("http://127.0.0.1:3000/api/me");
        section.cache_entries = 2;
        let provider = ForwardProvider::from_config(&section).expect("valid");
        let principal = Principal {
            identity: Some("u".into()),
            groups: Vec::new(),
            method: "forward",
            subject: "u".into(),
            may_act_for: None,
        };
        for index in 0..5u8 {
            provider.remember([index; 32], &principal);
            let size = provider.cache.lock().expect("lock").len();
            assert!(size <= 2, "cache holds {size} entries");
        }
        assert_eq!(provider.recall(&[4; 32]), Some(principal));
    }

    #[test]
    fn url_must_be_plain_http() {
        for url in [
            "ftp://127.0.0.1/me",
            "not a url",
            "http://user:pw@127.0.0.1/me",
        ] {
            let error = ForwardProvider::from_config(&section(url)).expect_err(url);
            assert_eq!(error.key, "auth.forward.url", "{url}");
        }
        assert!(ForwardProvider::from_config(&section("http://127.0.0.1:3000/api/me")).is_ok());
    }
}
