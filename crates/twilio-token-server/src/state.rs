//! The validated, shared state of a running server.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use twilio_access_token::{Clock, SystemClock};

use crate::audit::{AuditLog, AuditTarget};
use crate::auth::AuthProvider;
use crate::auth::api_key::{ApiKey, ApiKeyProvider};
use crate::auth::forward::ForwardProvider;
use crate::auth::oidc::{KeyHealth, OidcProvider};
use crate::auth::trusted_header::TrustedHeaderProvider;
use crate::auth::users::UsersProvider;
use crate::config::{
    ConfigError, Environment, FileConfig, Profile, ServerSection, build_profile, parse_listen,
};
use crate::issue::TokenCache;
use crate::metrics::{Metrics, MetricsSection};
use crate::policy::Policy;
use crate::rate_limit::RateLimits;
use crate::revocation::Revocations;

/// The maximum of `server.max_connections`.
const MAX_CONNECTIONS: usize = 1_000_000;

/// Everything a request handler needs, built once from the configuration.
#[derive(Clone)]
pub struct AppState {
    /// The `[server]` settings.
    pub server: ServerSection,
    /// The validated listen address.
    pub listen: SocketAddr,
    /// Profiles by name.
    pub profiles: HashMap<String, Profile>,
    /// The policy rules.
    pub policy: Policy,
    /// Authentication providers in the order they are tried.
    pub providers: Vec<Arc<dyn AuthProvider>>,
    /// The clock tokens are minted with.
    pub clock: Arc<dyn Clock + Send + Sync>,
    /// Tokens built for policy rules, minted again for each caller's identity.
    pub tokens: Arc<TokenCache>,
    /// The built-in user store, when `users` is in `auth.order` and `[auth.users]` is set. It
    /// is also in `providers`.
    pub users: Option<Arc<UsersProvider>>,
    /// The audit log. It opens on [`AuditLog::start`] or on the first token request.
    pub audit: Arc<AuditLog>,
    /// The server's metrics. A reload keeps them.
    pub metrics: Arc<Metrics>,
    /// The rate limits of `[rate_limit]`, when configured.
    pub rate_limits: Option<Arc<RateLimits>>,
    /// The deny lists of `[revocation]`, when configured.
    pub revocations: Option<Arc<Revocations>>,
    /// The `[metrics]` settings.
    pub metrics_config: MetricsSection,
    /// The OpenID Connect provider, when `oidc` is in `auth.order`. It is also in `providers`.
    pub oidc: Option<Arc<OidcProvider>>,
    /// The cross-site check for credentials a browser sends by itself.
    pub(crate) origin: crate::auth::origin::OriginCheck,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let providers: Vec<&str> = self
            .providers
            .iter()
            .map(|provider| provider.name())
            .collect();
        f.debug_struct("AppState")
            .field("listen", &self.listen)
            .field("profiles", &self.profiles)
            .field("policy", &self.policy)
            .field("providers", &providers)
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Validates a configuration and loads its secrets.
    ///
    /// `base_dir` is where relative secret files are looked up, usually the configuration
    /// file's folder.
    ///
    /// # Errors
    ///
    /// Returns the first [`ConfigError`], naming the key and the fix.
    pub fn from_config(
        file: &FileConfig,
        environment: &Environment,
        base_dir: &std::path::Path,
    ) -> Result<Self, ConfigError> {
        Self::build(file, environment, base_dir, None)
    }

    /// Validates a new configuration for a reload of the server running with `self`.
    ///
    /// The new state keeps `self`'s metrics, and its rate limit budgets and revocation lists
    /// when their sections did not change.
    ///
    /// # Errors
    ///
    /// Returns the first [`ConfigError`], as [`AppState::from_config`] does.
    pub fn reconfigure(
        &self,
        file: &FileConfig,
        environment: &Environment,
        base_dir: &std::path::Path,
    ) -> Result<Self, ConfigError> {
        Self::build(file, environment, base_dir, Some(self))
    }

    fn build(
        file: &FileConfig,
        environment: &Environment,
        base_dir: &std::path::Path,
        previous: Option<&AppState>,
    ) -> Result<Self, ConfigError> {
        let listen = parse_listen(&file.server.listen)?;
        check_server(&file.server)?;

        let mut profiles = HashMap::new();
        for (index, section) in file.profiles.iter().enumerate() {
            let profile = build_profile(index, section, environment, base_dir)?;
            if profiles.insert(profile.name.clone(), profile).is_some() {
                return Err(ConfigError::new(
                    format!("profiles[{index}].name"),
                    format!(
                        "a profile named {:?} already exists: give each a unique name",
                        section.name
                    ),
                ));
            }
        }
        if profiles.is_empty() {
            return Err(ConfigError::new(
                "profiles",
                "no Twilio account is configured: add a [[profiles]] section or set \
                 TWILIO_ACCOUNT_SID, TWILIO_API_KEY and TWILIO_API_SECRET",
            ));
        }
        let names: Vec<String> = file
            .profiles
            .iter()
            .map(|profile| profile.name.clone())
            .collect();
        let policy = Policy::from_config(&file.policy.rules, &names)?;
        check_services(&policy, &profiles)?;

        let clock: Arc<dyn Clock + Send + Sync> = Arc::new(SystemClock);
        let metrics = previous.map_or_else(Arc::default, |previous| Arc::clone(&previous.metrics));
        let mut providers: Vec<Arc<dyn AuthProvider>> = Vec::new();
        let mut users = None;
        let mut oidc = None;
        for (index, name) in file.auth.order.iter().enumerate() {
            match name.as_str() {
                "api_key" => {
                    let keys = file
                        .auth
                        .api_keys
                        .iter()
                        .enumerate()
                        .map(|(index, section)| ApiKey::from_config(index, section))
                        .collect::<Result<Vec<_>, _>>()?;
                    check_unique_key_names(&file.auth.api_keys)?;
                    if !keys.is_empty() {
                        providers.push(Arc::new(ApiKeyProvider::new(keys)));
                    }
                }
                "users" => {
                    if let Some(section) = &file.auth.users {
                        let provider = Arc::new(UsersProvider::from_config(
                            &file.server,
                            section,
                            environment,
                            Arc::clone(&clock),
                        )?);
                        providers.push(provider.clone());
                        users = Some(provider);
                    }
                }
                "oidc" => {
                    let section = file.auth.oidc.as_ref().ok_or_else(|| {
                        ConfigError::new(
                            format!("auth.order[{index}]"),
                            "oidc is listed but [auth.oidc] is missing: add it with at least one \
                             [[auth.oidc.issuers]]",
                        )
                    })?;
                    // Kept when its section did not change, so that a reload neither fetches
                    // the keys again nor loses them while an identity provider is down.
                    let kept = previous
                        .and_then(|previous| previous.oidc.as_ref())
                        .filter(|provider| provider.is_for(section, base_dir));
                    let provider = match kept {
                        Some(provider) => Arc::clone(provider),
                        None => Arc::new(
                            OidcProvider::from_config(section, base_dir, Arc::clone(&clock))?
                                .with_metrics(Arc::clone(&metrics)),
                        ),
                    };
                    providers.push(provider.clone());
                    oidc = Some(provider);
                }
                "forward" => {
                    let section = file.auth.forward.as_ref().ok_or_else(|| {
                        ConfigError::new(
                            format!("auth.order[{index}]"),
                            "forward is listed but [auth.forward] is missing: add it with the url \
                             of the app's who-am-I endpoint",
                        )
                    })?;
                    providers.push(Arc::new(ForwardProvider::from_config(section)?));
                }
                "trusted_header" => {
                    let section = file.auth.trusted_header.as_ref().ok_or_else(|| {
                        ConfigError::new(
                            format!("auth.order[{index}]"),
                            "trusted_header is listed but [auth.trusted_header] is missing: add \
                             it with trusted_proxies",
                        )
                    })?;
                    providers.push(Arc::new(TrustedHeaderProvider::from_config(section)?));
                }
                other => {
                    return Err(ConfigError::new(
                        format!("auth.order[{index}]"),
                        format!(
                            "unknown provider {other:?}: the providers are api_key, users, oidc, \
                             forward and trusted_header"
                        ),
                    ));
                }
            }
        }

        let audit_target = AuditTarget::from_section(&file.audit, &file.server.data_dir)?;
        // A reload keeps the running log when its section is unchanged.
        let audit = match previous
            .map(|previous| &previous.audit)
            .filter(|audit| audit.is_for(&audit_target, file.audit.fail_open))
        {
            Some(audit) => Arc::clone(audit),
            None => Arc::new(AuditLog::new(&audit_target, file.audit.fail_open)),
        };
        let rate_limits = match &file.rate_limit {
            None => None,
            Some(section) => Some(
                match previous
                    .and_then(|previous| previous.rate_limits.as_ref())
                    .filter(|limits| limits.section() == section)
                {
                    Some(limits) => Arc::clone(limits),
                    None => Arc::new(RateLimits::from_config(section, Arc::clone(&metrics))?),
                },
            ),
        };
        let revocations = match &file.revocation {
            None => None,
            Some(section) => Some(
                match previous
                    .and_then(|previous| previous.revocations.as_ref())
                    .filter(|revocations| revocations.same_config(section, &file.server.data_dir))
                {
                    Some(revocations) => Arc::clone(revocations),
                    None => Arc::new(Revocations::from_config(
                        section,
                        &file.server.data_dir,
                        Arc::clone(&metrics),
                    )?),
                },
            ),
        };
        if let Some(listen) = &file.metrics.listen {
            parse_listen(listen)
                .map_err(|error| ConfigError::new("metrics.listen", error.message))?;
        }

        Ok(AppState {
            server: file.server.clone(),
            listen,
            profiles,
            policy,
            providers,
            clock,
            tokens: Arc::default(),
            users,
            audit,
            metrics,
            rate_limits,
            revocations,
            metrics_config: file.metrics.clone(),
            oidc,
            origin: crate::auth::origin::OriginCheck::from_server(&file.server),
        })
    }

    /// Returns the names of readiness checks that fail; empty when ready.
    pub async fn readiness_failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if let Some(users) = &self.users
            && let Err(error) = users.store().ping().await
        {
            let cause = std::error::Error::source(&error).map(ToString::to_string);
            tracing::error!(%error, cause, "readiness check of the user database failed");
            failures.push("users_database".to_owned());
        }
        // Fails only while the log fails closed, because failing open still serves requests.
        // The probe reconnects, so a replica that gets no requests can become ready again.
        if self.audit.is_failing() && !self.audit.fail_open() && self.audit.probe().await.is_err() {
            failures.push("audit_log".to_owned());
        }
        if let Some(oidc) = &self.oidc {
            for (issuer, health) in oidc.key_health().await {
                if health == KeyHealth::Missing {
                    failures.push(format!("oidc_keys {issuer}"));
                }
            }
        }
        failures
    }

    /// Returns the names of dependencies that are degraded but do not stop token issuing, such
    /// as an OpenID Connect provider whose keys could not be refreshed while cached keys are
    /// still in use.
    pub async fn readiness_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(oidc) = &self.oidc {
            for (issuer, health) in oidc.key_health().await {
                if health == KeyHealth::Stale {
                    warnings.push(format!("oidc_keys_stale {issuer}"));
                }
            }
        }
        warnings
    }

    /// Returns the current Unix time by the state's clock.
    pub fn now(&self) -> u64 {
        self.clock.now().unwrap_or(0)
    }
}

/// Rejects two API keys with one name, because the audit log and the metrics name the key that
/// authenticated a request.
fn check_unique_key_names(sections: &[crate::config::ApiKeySection]) -> Result<(), ConfigError> {
    for (index, section) in sections.iter().enumerate() {
        if let Some(first) = sections[..index]
            .iter()
            .position(|earlier| earlier.name == section.name)
        {
            return Err(ConfigError::new(
                format!("auth.api_keys[{index}].name"),
                format!(
                    "{:?} is also the name of auth.api_keys[{first}]: give each key its own \
                     name, so that the audit log tells them apart",
                    section.name
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_server(server: &ServerSection) -> Result<(), ConfigError> {
    if !(0.05..=0.5).contains(&server.refresh_before_expiry) {
        return Err(ConfigError::new(
            "server.refresh_before_expiry",
            format!(
                "{} is out of range: use a share of the TTL from 0.05 to 0.5",
                server.refresh_before_expiry
            ),
        ));
    }
    for (index, origin) in server.allowed_origins.iter().enumerate() {
        // Browsers send the origin in lowercase with no path, and CORS compares bytes exactly.
        let host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let valid = host.is_some_and(|host| {
            !host.is_empty()
                && !host.contains(['/', '*', '?', '#', ' '])
                && !host.bytes().any(|byte| byte.is_ascii_uppercase())
        });
        if !valid {
            return Err(ConfigError::new(
                format!("server.allowed_origins[{index}]"),
                format!(
                    "{origin:?} is not an origin: write scheme, host and optional port, such as \
                     https://app.example.com, in lowercase and without a path or wildcard"
                ),
            ));
        }
    }
    if server.request_timeout_secs == 0 || server.body_limit_bytes == 0 {
        return Err(ConfigError::new(
            "server",
            "request_timeout_secs and body_limit_bytes must be above zero",
        ));
    }
    if server.header_read_timeout_secs == 0 {
        return Err(ConfigError::new(
            "server.header_read_timeout_secs",
            "must be above zero: it is how long a client may take to send request headers",
        ));
    }
    if !(1..=MAX_CONNECTIONS).contains(&server.max_connections) {
        return Err(ConfigError::new(
            "server.max_connections",
            format!(
                "{} is out of range: give a number from 1 to {MAX_CONNECTIONS}",
                server.max_connections
            ),
        ));
    }
    Ok(())
}

/// Checks that each rule's profile has the service SIDs its grants need.
fn check_services(policy: &Policy, profiles: &HashMap<String, Profile>) -> Result<(), ConfigError> {
    for rule in policy.rules() {
        let Some(profile) = profiles.get(&rule.profile) else {
            continue;
        };
        let services = &profile.services;
        let needs = [
            (
                rule.grants.chat.is_some(),
                services.chat_service_sid.is_none(),
                "chat",
                "chat_service_sid",
            ),
            (
                rule.grants.sync.is_some(),
                services.sync_service_sid.is_none(),
                "sync",
                "sync_service_sid",
            ),
            (
                rule.grants
                    .voice
                    .as_ref()
                    .is_some_and(|voice| voice.outgoing),
                services.voice_application_sid.is_none(),
                "voice outgoing",
                "voice_application_sid",
            ),
            (
                rule.grants.task_router.is_some(),
                services.taskrouter_workspace_sid.is_none(),
                "task_router",
                "taskrouter_workspace_sid",
            ),
        ];
        for (granted, missing, grant, field) in needs {
            if granted && missing {
                return Err(ConfigError::new(
                    format!("policy.rules[{}].grants", rule.index),
                    format!(
                        "the rule issues {grant} but profile {:?} has no {field}: set it in the \
                         profile",
                        profile.name
                    ),
                ));
            }
        }
    }
    Ok(())
}
