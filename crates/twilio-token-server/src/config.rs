//! Configuration: one TOML file plus environment variables, validated once at start-up.
//!
//! The file's sections are `[server]`, `[auth]` (with `[auth.users]` and `[[auth.api_keys]]`),
//! `[[profiles]]` (with `[[profiles.api_keys]]`), `[[policy.rules]]`, `[audit]` and `[log]`. The usual Twilio
//! environment variables fill in the profile named `default`, so a Twilio quickstart's `.env`
//! works unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use twilio_access_token::{
    ApiSecret, SidKind, Ttl, validate_region, validate_sid, validate_sync_service_sid,
};

use crate::pattern::Pattern;

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// An invalid configuration value: the key, and what is wrong with it and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, such as `profiles[0].account_sid` or `TWILIO_API_SECRET`.
    pub key: String,
    /// The problem and how to fix it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The configuration file as written. See the module documentation for the layout.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerSection,
    /// `[auth]`.
    #[serde(default)]
    pub auth: AuthSection,
    /// `[[profiles]]`.
    #[serde(default)]
    pub profiles: Vec<ProfileSection>,
    /// `[policy]`.
    #[serde(default)]
    pub policy: PolicySection,
    /// `[audit]`.
    #[serde(default)]
    pub audit: crate::audit::AuditSection,
    /// `[log]`.
    #[serde(default)]
    pub log: LogSection,
    /// `[rate_limit]`: limits per identity and per client address. Absent: no limit.
    #[serde(default)]
    pub rate_limit: Option<crate::rate_limit::RateLimitSection>,
    /// `[revocation]`: deny lists by identity and `jti`. Absent: none is read.
    #[serde(default)]
    pub revocation: Option<crate::revocation::RevocationSection>,
    /// `[metrics]`: where `GET /metrics` is served.
    #[serde(default)]
    pub metrics: crate::metrics::MetricsSection,
}

/// `[log]`: the format of the server's logs on stderr.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `plain` (one line of text per event) or `json` (one JSON object per line). Default
    /// `plain`. The `--log-format` option of `serve` wins over it.
    pub format: LogFormat,
}

/// The format of the server's logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// `[server]`: listening, limits and browser rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address and port to listen on. Default `127.0.0.1:8080`.
    pub listen: String,
    /// Origins whose browsers may call the server with credentials, such as
    /// `https://app.example.com`. Default: none (same-origin only).
    pub allowed_origins: Vec<String>,
    /// Trust `X-Forwarded-Proto: https` from a proxy for the cookie's `Secure` flag. Default
    /// false.
    pub trust_forwarded_proto: bool,
    /// Folder for the SQLite files and the generated cookie key. Default `./twilio-token-data`.
    pub data_dir: PathBuf,
    /// Share of the TTL before expiry at which clients should refresh, from 0.05 to 0.5.
    /// Default 0.2: a one-hour token is refreshed after 48 minutes.
    pub refresh_before_expiry: f64,
    /// Seconds a request may take. Default 10.
    pub request_timeout_secs: u64,
    /// Largest request body in bytes. Default 16384.
    pub body_limit_bytes: usize,
    /// Seconds in-flight requests get to finish after SIGINT or SIGTERM. Default 30.
    pub shutdown_grace_secs: u64,
    /// Seconds a client may take to send a request's headers, which is also how long a
    /// kept-alive connection may stay idle. Default 10.
    pub header_read_timeout_secs: u64,
    /// Connections served at once; further clients wait to be accepted. Default 10000.
    pub max_connections: usize,
    /// Serve the demo page at `/`, with its scripts. Default: off, but `serve --demo` turns it
    /// on unless this is set to false.
    pub demo_page: Option<bool>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: DEFAULT_LISTEN.to_owned(),
            allowed_origins: Vec::new(),
            trust_forwarded_proto: false,
            data_dir: PathBuf::from("twilio-token-data"),
            refresh_before_expiry: 0.2,
            request_timeout_secs: 10,
            body_limit_bytes: 16 * 1024,
            shutdown_grace_secs: 30,
            header_read_timeout_secs: 10,
            max_connections: 10_000,
            demo_page: None,
        }
    }
}

/// `[auth]`: which providers run, in which order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Providers tried in order; the first that recognises the request's credentials decides.
    /// Default `["api_key", "users"]`.
    pub order: Vec<String>,
    /// `[auth.users]`: the built-in user store. Absent means disabled.
    pub users: Option<UsersSection>,
    /// `[[auth.api_keys]]`: static bearer keys for backends.
    pub api_keys: Vec<ApiKeySection>,
    /// `[auth.oidc]`: bearer JWTs from OpenID Connect providers. Absent means disabled.
    pub oidc: Option<crate::auth::oidc::OidcSection>,
    /// `[auth.forward]`: the app's own "who am I" endpoint. Absent means disabled.
    pub forward: Option<crate::auth::forward::ForwardSection>,
    /// `[auth.trusted_header]`: headers set by an authenticating proxy. Absent means disabled.
    pub trusted_header: Option<crate::auth::trusted_header::TrustedHeaderSection>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            order: vec!["api_key".into(), "users".into()],
            users: None,
            api_keys: Vec::new(),
            oidc: None,
            forward: None,
            trusted_header: None,
        }
    }
}

/// `[auth.users]`: the built-in user store with password login and session cookies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersSection {
    /// SQLite file, relative to `data_dir` unless absolute. Default `users.sqlite3`.
    pub database: PathBuf,
    /// Session lifetime in seconds. Default 43200 (12 hours).
    pub session_ttl_secs: u64,
    /// Session cookie name. Default `twilio_token_session`.
    pub cookie_name: String,
}

impl Default for UsersSection {
    fn default() -> Self {
        UsersSection {
            database: PathBuf::from("users.sqlite3"),
            session_ttl_secs: 12 * 3600,
            cookie_name: "twilio_token_session".into(),
        }
    }
}

/// `[[auth.api_keys]]`: one static bearer key, stored as a hash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySection {
    /// A name for logs and audit, such as `billing-backend`.
    pub name: String,
    /// `sha256:` and the hex SHA-256 of the key, as `twilio-token api-key generate` prints.
    pub hash: String,
    /// The identity tokens get when the request names none.
    pub identity: Option<String>,
    /// A pattern of identities the key may request tokens for with `identity` in the request.
    /// Absent means the key may not act for others.
    pub may_act_for: Option<String>,
    /// Groups the key's requests belong to, for policy rules.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `[[profiles]]`: one Twilio account and the services it serves.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSection {
    /// The profile name policy rules refer to. Default `default`.
    #[serde(default = "default_profile_name")]
    pub name: String,
    /// The account SID (`AC…`).
    pub account_sid: Option<String>,
    /// The region written as `twr`, such as `ie1`.
    pub region: Option<String>,
    /// The SID of the API key that signs new tokens. Default: the first key.
    pub signing_key: Option<String>,
    /// The API keys, each with its secret from an environment variable or a file.
    #[serde(default)]
    pub api_keys: Vec<KeySection>,
    /// Conversations or Chat service SID (`IS…`).
    pub chat_service_sid: Option<String>,
    /// Sync service SID (`IS…` or `default`).
    pub sync_service_sid: Option<String>,
    /// TwiML application SID (`AP…`) for outgoing Voice calls.
    pub voice_application_sid: Option<String>,
    /// Push credential SID (`CR…`) for Chat and Voice notifications.
    pub push_credential_sid: Option<String>,
    /// TaskRouter workspace SID (`WS…`).
    pub taskrouter_workspace_sid: Option<String>,
    /// App name for legacy Chat endpoint ids (`app:identity:device`). When set, a request's
    /// `device_id` builds the endpoint id.
    pub endpoint_app_name: Option<String>,
}

fn default_profile_name() -> String {
    "default".into()
}

/// `[[profiles.api_keys]]`: an API key and where its secret comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySection {
    /// The API key SID (`SK…`).
    pub sid: String,
    /// Environment variable holding the secret.
    pub secret_env: Option<String>,
    /// File holding the secret; one trailing newline is removed.
    pub secret_file: Option<PathBuf>,
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Rules tried in order; the first whose identities or groups match decides.
    #[serde(default)]
    pub rules: Vec<RuleSection>,
}

/// `[[policy.rules]]`: who gets which grants, from which profile, for how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    /// Identity patterns this rule applies to, such as `["*"]` or `["staff-*"]`.
    #[serde(default)]
    pub identities: Vec<String>,
    /// Groups this rule applies to; a caller in any of them matches.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The profile tokens are minted with. Default `default`.
    #[serde(default = "default_profile_name")]
    pub profile: String,
    /// TTL in seconds when the request names none. Default 3600.
    pub ttl: Option<u64>,
    /// Largest TTL a request may ask for. Default: the default TTL.
    pub max_ttl: Option<u64>,
    /// The grants to issue.
    #[serde(default)]
    pub grants: GrantsSection,
}

/// The grants a rule issues. An absent grant is not issued.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsSection {
    /// Chat on the profile's Chat service.
    pub chat: Option<ChatRule>,
    /// Video.
    pub video: Option<VideoRule>,
    /// Voice.
    pub voice: Option<VoiceRule>,
    /// Sync on the profile's Sync service.
    pub sync: Option<EmptyRule>,
    /// TaskRouter on the profile's workspace.
    pub task_router: Option<TaskRouterRule>,
}

/// Chat grant settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRule {
    /// Deployment role SID (`RL…`).
    pub role_sid: Option<String>,
}

/// Video grant settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoRule {
    /// Room name patterns a request may ask for. Empty: no room may be asked for, and the
    /// token allows any room.
    #[serde(default)]
    pub rooms: Vec<String>,
}

/// Voice grant settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceRule {
    /// Allow incoming calls.
    #[serde(default)]
    pub incoming: bool,
    /// Allow outgoing calls through the profile's TwiML application.
    #[serde(default)]
    pub outgoing: bool,
}

/// A grant with no settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyRule {}

/// TaskRouter grant settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRouterRule {
    /// The role, such as `worker` or `supervisor`.
    pub role: Option<String>,
}

/// Reads and parses a configuration file.
///
/// # Errors
///
/// Returns a [`ConfigError`] naming the file when it cannot be read, or the key when it is not
/// valid TOML of the expected shape.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let key = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::new(&key, format!("cannot read the file: {error}")))?;
    parse(&text).map_err(|error| ConfigError::new(format!("{key}: {}", error.key), error.message))
}

/// Parses configuration text.
///
/// # Errors
///
/// Returns a [`ConfigError`] with the TOML parser's position and message.
pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    let line_of = |error: &toml::de::Error| {
        error
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|error| {
        let key = line_of(&error).map_or_else(|| "file".into(), |line| format!("line {line}"));
        ConfigError::new(key, error.message().to_owned())
    })?;
    // The path names the key of a value of the wrong type, such as policy.rules[0].ttl.
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let line = line_of(&inner);
        let key = match (path.as_str(), line) {
            (".", Some(line)) => format!("line {line}"),
            (".", None) => "file".into(),
            (path, Some(line)) => format!("line {line}: {path}"),
            (path, None) => path.to_owned(),
        };
        ConfigError::new(key, inner.message().to_owned())
    })
}

/// The environment, as a list of variables, so tests can pass their own.
pub type Environment = BTreeMap<String, String>;

/// Reads the process environment, keeping only the variables this server uses.
pub fn process_environment() -> Environment {
    std::env::vars()
        .filter(|(name, _)| name.starts_with("TWILIO_"))
        .collect()
}

/// Looks up a variable, treating an empty value as unset.
fn env<'a>(environment: &'a Environment, names: &[&str]) -> Option<(&'a str, String)> {
    names.iter().find_map(|name| {
        environment
            .get_key_value(*name)
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (name.as_str(), value.clone()))
    })
}

/// A setter for one optional field of a profile.
type ProfileField = fn(&mut ProfileSection) -> &mut Option<String>;

/// Applies the Twilio environment variables to the profile named `default`, creating it when
/// any of them is set: `TWILIO_ACCOUNT_SID`, `TWILIO_API_KEY` or `TWILIO_API_KEY_SID`,
/// `TWILIO_API_SECRET` or `TWILIO_API_KEY_SECRET`, `TWILIO_CHAT_SERVICE_SID` or
/// `TWILIO_CONVERSATIONS_SERVICE_SID`, `TWILIO_SYNC_SERVICE_SID`, `TWILIO_TWIML_APP_SID`,
/// `TWILIO_PUSH_CREDENTIAL_SID`, `TWILIO_TASKROUTER_WORKSPACE_SID` and `TWILIO_REGION`.
/// Environment values win over the file.
pub fn apply_environment(file: &mut FileConfig, environment: &Environment) {
    let string_vars: [(&[&str], ProfileField); 7] = [
        (&["TWILIO_ACCOUNT_SID"], |p| &mut p.account_sid),
        (
            &[
                "TWILIO_CHAT_SERVICE_SID",
                "TWILIO_CONVERSATIONS_SERVICE_SID",
            ],
            |p| &mut p.chat_service_sid,
        ),
        (&["TWILIO_SYNC_SERVICE_SID"], |p| &mut p.sync_service_sid),
        (&["TWILIO_TWIML_APP_SID"], |p| &mut p.voice_application_sid),
        (&["TWILIO_PUSH_CREDENTIAL_SID"], |p| {
            &mut p.push_credential_sid
        }),
        (&["TWILIO_TASKROUTER_WORKSPACE_SID"], |p| {
            &mut p.taskrouter_workspace_sid
        }),
        (&["TWILIO_REGION"], |p| &mut p.region),
    ];
    let key_sid = env(environment, &["TWILIO_API_KEY", "TWILIO_API_KEY_SID"]);
    let any_set = key_sid.is_some()
        || string_vars
            .iter()
            .any(|(names, _)| env(environment, names).is_some());
    if !any_set {
        return;
    }

    let index = match file
        .profiles
        .iter()
        .position(|profile| profile.name == "default")
    {
        Some(index) => index,
        None => {
            file.profiles.push(ProfileSection {
                name: "default".into(),
                ..ProfileSection::default()
            });
            file.profiles.len() - 1
        }
    };
    let profile = &mut file.profiles[index];
    for (names, field) in string_vars {
        if let Some((_, value)) = env(environment, names) {
            *field(profile) = Some(value);
        }
    }
    if let Some((_, sid)) = key_sid {
        let secret_env = env(environment, &["TWILIO_API_SECRET", "TWILIO_API_KEY_SECRET"])
            .map(|(name, _)| name.to_owned())
            .unwrap_or_else(|| "TWILIO_API_SECRET".into());
        profile.api_keys.retain(|key| key.sid != sid);
        profile.api_keys.insert(
            0,
            KeySection {
                sid: sid.clone(),
                secret_env: Some(secret_env),
                secret_file: None,
            },
        );
        profile.signing_key = Some(sid);
    }
}

/// A validated profile: one account, its keys and services.
#[derive(Clone)]
pub struct Profile {
    /// The profile name.
    pub name: String,
    /// The account SID.
    pub account_sid: String,
    /// The region, if any.
    pub region: Option<String>,
    /// The API keys, the signing key first.
    pub keys: Vec<(String, ApiSecret)>,
    /// The service SIDs and settings as configured.
    pub services: ProfileSection,
    /// True when the profile uses the demo placeholders, whose tokens Twilio rejects.
    pub placeholder: bool,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sids: Vec<&str> = self.keys.iter().map(|(sid, _)| sid.as_str()).collect();
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("account_sid", &self.account_sid)
            .field("region", &self.region)
            .field("api_keys", &sids)
            .field("placeholder", &self.placeholder)
            .finish_non_exhaustive()
    }
}

impl Profile {
    /// Returns the SID and secret of the key that signs new tokens.
    pub fn signing_key(&self) -> (&str, &ApiSecret) {
        let (sid, secret) = &self.keys[0];
        (sid, secret)
    }
}

/// Reads a secret from the environment variable or file that a key section names.
fn read_secret(
    key: &str,
    section: &KeySection,
    environment: &Environment,
    base_dir: &Path,
) -> Result<ApiSecret, ConfigError> {
    match (&section.secret_env, &section.secret_file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            key,
            "both secret_env and secret_file are set: keep one",
        )),
        (None, None) => Err(ConfigError::new(
            key,
            "the key has no secret: set secret_env to an environment variable or secret_file to \
             a file that holds it",
        )),
        (Some(name), None) => match environment.get(name) {
            Some(value) if value.is_empty() => Err(ConfigError::new(
                format!("{key}.secret_env"),
                format!(
                    "the environment variable {name} is set but empty: set it to the API key's \
                     secret"
                ),
            )),
            Some(value) => Ok(ApiSecret::new(value.clone())),
            None => Err(ConfigError::new(
                format!("{key}.secret_env"),
                format!(
                    "the environment variable {name} is not set: set it to the API key's secret \
                     (Access Tokens are signed with an API key secret, not the Auth Token)"
                ),
            )),
        },
        (None, Some(path)) => {
            let path = base_dir.join(path);
            let mut text = std::fs::read_to_string(&path).map_err(|error| {
                ConfigError::new(
                    format!("{key}.secret_file"),
                    format!("cannot read {}: {error}", path.display()),
                )
            })?;
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            Ok(ApiSecret::new(text))
        }
    }
}

fn check_sid(key: String, kind: SidKind, value: &Option<String>) -> Result<(), ConfigError> {
    match value {
        Some(value) => {
            validate_sid(kind, value).map_err(|error| ConfigError::new(key, error.to_string()))
        }
        None => Ok(()),
    }
}

/// Builds a token with the key, so a secret the library would reject (empty, or with whitespace
/// around it) stops start-up instead of failing every request.
fn check_signing(
    key_name: &str,
    account_sid: &str,
    api_key_sid: &str,
    secret: &ApiSecret,
) -> Result<(), ConfigError> {
    twilio_access_token::AccessToken::builder()
        .account_sid(account_sid)
        .api_key_sid(api_key_sid)
        .api_secret(secret.clone())
        .identity("start-up-check")
        .build()
        .map(|_| ())
        .map_err(|error| ConfigError::new(format!("{key_name} secret"), error.to_string()))
}

/// Validates one profile and loads its secrets.
pub(crate) fn build_profile(
    index: usize,
    section: &ProfileSection,
    environment: &Environment,
    base_dir: &Path,
) -> Result<Profile, ConfigError> {
    let prefix = format!("profiles[{index}] ({})", section.name);
    let Some(account_sid) = section.account_sid.clone() else {
        return Err(ConfigError::new(
            format!("{prefix}.account_sid"),
            "missing: set it to the account SID (AC…) or set TWILIO_ACCOUNT_SID",
        ));
    };
    check_sid(
        format!("{prefix}.account_sid"),
        SidKind::Account,
        &section.account_sid,
    )?;
    if let Some(region) = &section.region {
        validate_region(region)
            .map_err(|error| ConfigError::new(format!("{prefix}.region"), error.to_string()))?;
    }
    check_sid(
        format!("{prefix}.chat_service_sid"),
        SidKind::Service,
        &section.chat_service_sid,
    )?;
    if let Some(sid) = &section.sync_service_sid {
        validate_sync_service_sid(sid).map_err(|error| {
            ConfigError::new(format!("{prefix}.sync_service_sid"), error.to_string())
        })?;
    }
    check_sid(
        format!("{prefix}.voice_application_sid"),
        SidKind::Application,
        &section.voice_application_sid,
    )?;
    check_sid(
        format!("{prefix}.push_credential_sid"),
        SidKind::Credential,
        &section.push_credential_sid,
    )?;
    check_sid(
        format!("{prefix}.taskrouter_workspace_sid"),
        SidKind::Workspace,
        &section.taskrouter_workspace_sid,
    )?;

    if section.api_keys.is_empty() {
        return Err(ConfigError::new(
            format!("{prefix}.api_keys"),
            "no API key: add [[profiles.api_keys]] with sid and secret_env, or set TWILIO_API_KEY \
             and TWILIO_API_SECRET",
        ));
    }
    let mut keys = Vec::with_capacity(section.api_keys.len());
    for (key_index, key) in section.api_keys.iter().enumerate() {
        let key_name = format!("{prefix}.api_keys[{key_index}]");
        validate_sid(SidKind::ApiKey, &key.sid)
            .map_err(|error| ConfigError::new(format!("{key_name}.sid"), error.to_string()))?;
        if keys.iter().any(|(sid, _)| sid == &key.sid) {
            return Err(ConfigError::new(
                format!("{key_name}.sid"),
                "this API key is listed twice",
            ));
        }
        let secret = read_secret(&key_name, key, environment, base_dir)?;
        check_signing(&key_name, &account_sid, &key.sid, &secret)?;
        keys.push((key.sid.clone(), secret));
    }
    if let Some(signing) = &section.signing_key {
        let Some(position) = keys.iter().position(|(sid, _)| sid == signing) else {
            return Err(ConfigError::new(
                format!("{prefix}.signing_key"),
                format!("{signing} is not one of the profile's api_keys: add it or pick another"),
            ));
        };
        keys.swap(0, position);
    }

    Ok(Profile {
        name: section.name.clone(),
        account_sid,
        region: section.region.clone(),
        keys,
        services: section.clone(),
        placeholder: false,
    })
}

/// Checks a listen address.
pub(crate) fn parse_listen(listen: &str) -> Result<SocketAddr, ConfigError> {
    listen.parse().map_err(|_| {
        ConfigError::new(
            "server.listen",
            format!("{listen:?} is not an address and port such as 127.0.0.1:8080 or [::1]:8080"),
        )
    })
}

/// Checks a TTL value in seconds.
pub(crate) fn parse_ttl(key: String, secs: u64) -> Result<Ttl, ConfigError> {
    Ttl::from_secs(secs).map_err(|error| ConfigError::new(key, error.to_string()))
}

/// Compiles a list of patterns.
pub(crate) fn patterns(values: &[String]) -> Vec<Pattern> {
    values.iter().map(Pattern::new).collect()
}

/// Adds to `environment` the process's values of the variables that `secret_env` keys name.
///
/// [`process_environment`] keeps only `TWILIO_*` variables, so without this step a secret in a
/// variable such as `BILLING_API_SECRET` would count as not set. Variables already in
/// `environment` are kept as they are.
pub fn add_secret_variables(file: &FileConfig, environment: &mut Environment) {
    let names = file
        .profiles
        .iter()
        .flat_map(|profile| &profile.api_keys)
        .filter_map(|key| key.secret_env.as_ref());
    for name in names {
        if environment.contains_key(name) {
            continue;
        }
        if let Ok(value) = std::env::var(name) {
            environment.insert(name.clone(), value);
        }
    }
}

/// The account SID of the `serve --demo` placeholder profile. Twilio rejects tokens that name it.
pub const PLACEHOLDER_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

/// The API key SID of the `serve --demo` placeholder profile.
pub const PLACEHOLDER_API_KEY_SID: &str = "SK00000000000000000000000000000000";

/// The Chat service SID of the `serve --demo` placeholder profile.
pub const PLACEHOLDER_CHAT_SERVICE_SID: &str = "IS00000000000000000000000000000000";

/// The variable that carries the placeholder secret from [`apply_demo`] to
/// [`AppState::from_config`](crate::AppState::from_config). It exists only in the
/// [`Environment`] map that `apply_demo` is given, never in the process environment.
const PLACEHOLDER_SECRET_VARIABLE: &str = "TWILIO_TOKEN_DEMO_PLACEHOLDER_SECRET";

/// Length of the random placeholder secret, the length of a Twilio API secret.
const PLACEHOLDER_SECRET_CHARS: usize = 32;

/// The parts of the configuration that [`apply_demo`] filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DemoSetup {
    /// The profile that uses placeholder credentials, when no real ones were configured. Set
    /// [`Profile::placeholder`] on it after building the state.
    pub placeholder_profile: Option<String>,
    /// True when the demo policy rule was added because the configuration has no rules.
    pub added_rule: bool,
}

/// Fills in the embedded default configuration of `serve --demo`.
///
/// Call it after [`apply_environment`], so that real credentials from the environment are used.
/// It changes only what the configuration leaves out:
///
/// - `server.demo_page` becomes true when not set.
/// - `[auth.users]` gets its defaults when absent, and `users` is appended to `auth.order` when
///   missing, so the built-in users are enabled.
/// - With no profile at all, it adds the placeholder profile `default`: account
///   [`PLACEHOLDER_ACCOUNT_SID`], API key [`PLACEHOLDER_API_KEY_SID`] with a random 32-character
///   secret made on each call, Chat service [`PLACEHOLDER_CHAT_SERVICE_SID`] and Sync service
///   `default`. The secret is put into `environment` only.
/// - With no policy rule, it adds one for every identity (`*`) on the first profile, with TTL
///   and max TTL 3600 seconds. It grants Video for any room and incoming Voice, plus Chat, Sync
///   and outgoing Voice when the profile has the service SID each needs.
pub fn apply_demo(file: &mut FileConfig, environment: &mut Environment) -> DemoSetup {
    file.server.demo_page.get_or_insert(true);
    if file.auth.users.is_none() {
        file.auth.users = Some(UsersSection::default());
    }
    if !file.auth.order.iter().any(|name| name == "users") {
        file.auth.order.push("users".into());
    }

    let mut placeholder_profile = None;
    if file.profiles.is_empty() {
        file.profiles.push(placeholder_profile_section());
        environment.insert(
            PLACEHOLDER_SECRET_VARIABLE.into(),
            random_alphanumeric(PLACEHOLDER_SECRET_CHARS),
        );
        placeholder_profile = Some(default_profile_name());
    }

    let added_rule = file.policy.rules.is_empty();
    if added_rule {
        let rule = demo_rule(&file.profiles[0]);
        file.policy.rules.push(rule);
    }

    DemoSetup {
        placeholder_profile,
        added_rule,
    }
}

fn placeholder_profile_section() -> ProfileSection {
    ProfileSection {
        name: default_profile_name(),
        account_sid: Some(PLACEHOLDER_ACCOUNT_SID.into()),
        api_keys: vec![KeySection {
            sid: PLACEHOLDER_API_KEY_SID.into(),
            secret_env: Some(PLACEHOLDER_SECRET_VARIABLE.into()),
            secret_file: None,
        }],
        chat_service_sid: Some(PLACEHOLDER_CHAT_SERVICE_SID.into()),
        sync_service_sid: Some("default".into()),
        ..ProfileSection::default()
    }
}

/// Builds the demo rule for `profile`, leaving out each grant whose service SID is missing.
fn demo_rule(profile: &ProfileSection) -> RuleSection {
    let grants = GrantsSection {
        chat: profile
            .chat_service_sid
            .as_ref()
            .map(|_| ChatRule::default()),
        video: Some(VideoRule {
            rooms: vec!["*".into()],
        }),
        voice: Some(VoiceRule {
            incoming: true,
            outgoing: profile.voice_application_sid.is_some(),
        }),
        sync: profile.sync_service_sid.as_ref().map(|_| EmptyRule {}),
        task_router: None,
    };
    RuleSection {
        identities: vec!["*".into()],
        groups: Vec::new(),
        profile: profile.name.clone(),
        ttl: Some(3600),
        max_ttl: Some(3600),
        grants,
    }
}

fn random_alphanumeric(chars: usize) -> String {
    use rand::Rng as _;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(chars)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AppState;

    /// Returns a new data folder under the system's temporary folder, so that tests running in
    /// parallel never share a database and nothing is written into the source tree.
    fn temp_dir(test: &str) -> PathBuf {
        use rand::RngCore as _;
        std::env::temp_dir().join(format!(
            "twilio-token-config-{test}-{}-{}",
            std::process::id(),
            rand::rng().next_u64()
        ))
    }

    fn environment(pairs: &[(&str, &str)]) -> Environment {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn demo_without_credentials_uses_placeholders() {
        let mut file = FileConfig::default();
        let mut environment = Environment::new();

        let setup = apply_demo(&mut file, &mut environment);

        assert_eq!(setup.placeholder_profile.as_deref(), Some("default"));
        assert!(setup.added_rule);
        assert!(file.auth.users.is_some());
        let base_dir = temp_dir("demo-placeholders");
        file.server.data_dir = base_dir.clone();
        let state = AppState::from_config(&file, &environment, &base_dir)
            .expect("the demo configuration is valid");
        let _ = std::fs::remove_dir_all(&base_dir);
        let profile = &state.profiles["default"];
        assert_eq!(profile.account_sid, PLACEHOLDER_ACCOUNT_SID);
        assert_eq!(profile.signing_key().0, PLACEHOLDER_API_KEY_SID);
        let rule = &state.policy.rules()[0];
        assert_eq!(rule.grant_names(), ["chat", "video", "voice", "sync"]);
        assert_eq!(rule.ttl.as_secs(), 3600);
        assert_eq!(rule.max_ttl.as_secs(), 3600);
    }

    #[test]
    fn demo_placeholder_secret_differs_per_call() {
        let mut first = Environment::new();
        let mut second = Environment::new();

        apply_demo(&mut FileConfig::default(), &mut first);
        apply_demo(&mut FileConfig::default(), &mut second);

        let first = &first[PLACEHOLDER_SECRET_VARIABLE];
        assert_eq!(first.len(), PLACEHOLDER_SECRET_CHARS);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(first, &second[PLACEHOLDER_SECRET_VARIABLE]);
    }

    #[test]
    fn demo_with_real_credentials_drops_missing_services() {
        let mut environment = environment(&[
            ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
            ("TWILIO_API_KEY", "SKfedcba9876543210fedcba9876543210"),
            ("TWILIO_API_SECRET", "FAKEsecretDoNotUse0123456789abcd"),
        ]);
        let mut file = FileConfig::default();
        apply_environment(&mut file, &environment);

        let setup = apply_demo(&mut file, &mut environment);

        assert_eq!(setup.placeholder_profile, None);
        assert!(!environment.contains_key(PLACEHOLDER_SECRET_VARIABLE));
        let base_dir = temp_dir("demo-credentials");
        file.server.data_dir = base_dir.clone();
        let state = AppState::from_config(&file, &environment, &base_dir)
            .expect("the demo configuration is valid");
        let _ = std::fs::remove_dir_all(&base_dir);
        assert_eq!(
            state.profiles["default"].account_sid,
            "AC0123456789abcdef0123456789abcdef"
        );
        assert_eq!(state.policy.rules()[0].grant_names(), ["video", "voice"]);
    }

    #[test]
    fn demo_keeps_configured_rules() {
        let mut file = parse(
            r#"
            [[policy.rules]]
            identities = ["staff-*"]
            grants = { video = {} }
            "#,
        )
        .expect("valid TOML");

        let setup = apply_demo(&mut file, &mut Environment::new());

        assert!(!setup.added_rule);
        assert_eq!(file.policy.rules.len(), 1);
        assert_eq!(file.policy.rules[0].identities, ["staff-*"]);
    }

    #[test]
    fn secret_variables_keep_existing_values() {
        let file = parse(
            r#"
            [[profiles]]
            account_sid = "AC0123456789abcdef0123456789abcdef"
            api_keys = [{ sid = "SKfedcba9876543210fedcba9876543210", secret_env = "PATH" }]
            "#,
        )
        .expect("valid TOML");
        let mut environment = environment(&[("PATH", "kept")]);

        add_secret_variables(&file, &mut environment);

        assert_eq!(environment["PATH"], "kept");
    }

    #[test]
    fn secret_variables_read_from_process() {
        let file = parse(
            r#"
            [[profiles]]
            account_sid = "AC0123456789abcdef0123456789abcdef"
            api_keys = [{ sid = "SKfedcba9876543210fedcba9876543210", secret_env = "PATH" }]
            "#,
        )
        .expect("valid TOML");
        let mut environment = Environment::new();

        add_secret_variables(&file, &mut environment);

        // PATH plays the secret variable, because setting one needs `unsafe` in edition 2024,
        // which the workspace forbids.
        assert_eq!(environment.get("PATH"), std::env::var("PATH").ok().as_ref());
    }

    fn profile_with_secret(secret: &str) -> Result<Profile, ConfigError> {
        let section = ProfileSection {
            name: "default".into(),
            account_sid: Some("AC0123456789abcdef0123456789abcdef".into()),
            api_keys: vec![KeySection {
                sid: "SKfedcba9876543210fedcba9876543210".into(),
                secret_env: Some("TEST_SECRET".into()),
                secret_file: None,
            }],
            ..ProfileSection::default()
        };
        let environment = environment(&[("TEST_SECRET", secret)]);
        build_profile(0, &section, &environment, Path::new("."))
    }

    #[test]
    fn secret_with_whitespace_stops_start_up() {
        let error = profile_with_secret("secret-with-space ").expect_err("whitespace");
        assert_eq!(error.key, "profiles[0] (default).api_keys[0] secret");
        assert!(error.message.contains("whitespace"), "{}", error.message);
        assert!(profile_with_secret("FAKEsecretDoNotUse0123456789abcd").is_ok());
    }

    #[test]
    fn empty_secret_variable_named() {
        let error = profile_with_secret("").expect_err("empty");

        assert_eq!(error.key, "profiles[0] (default).api_keys[0].secret_env");
        assert!(
            error.message.contains("TEST_SECRET is set but empty"),
            "{}",
            error.message
        );
    }

    fn api_key_section(name: &str) -> ApiKeySection {
        ApiKeySection {
            name: name.into(),
            hash: format!("sha256:{}", "0".repeat(64)),
            identity: Some("backend".into()),
            may_act_for: None,
            groups: Vec::new(),
        }
    }

    #[test]
    fn api_key_names_unique() {
        let mut file = FileConfig::default();
        file.profiles.push(placeholder_profile_section());
        file.auth.api_keys = vec![
            api_key_section("billing"),
            api_key_section("support"),
            api_key_section("billing"),
        ];
        let environment = environment(&[(PLACEHOLDER_SECRET_VARIABLE, "FAKEsecretDoNotUse0123")]);

        let error = AppState::from_config(&file, &environment, Path::new("."))
            .expect_err("two keys named billing");

        assert_eq!(error.key, "auth.api_keys[2].name");
        assert!(
            error.message.contains("also the name of auth.api_keys[0]"),
            "{}",
            error.message
        );
    }

    #[test]
    fn empty_may_act_for_rejected() {
        let mut section = api_key_section("support");
        section.may_act_for = Some(String::new());

        let error =
            crate::auth::api_key::ApiKey::from_config(0, &section).expect_err("an empty pattern");

        assert_eq!(error.key, "auth.api_keys[0] (support).may_act_for");
    }

    #[test]
    fn origins_need_lowercase_host_without_path() {
        for origin in [
            "https://app.example.com/app",
            "https://App.example.com",
            "https://",
            "*",
        ] {
            let mut file = FileConfig::default();
            file.server.allowed_origins = vec![origin.to_owned()];
            let error = crate::state::check_server(&file.server).expect_err(origin);
            assert_eq!(error.key, "server.allowed_origins[0]", "{origin}");
        }
        let mut file = FileConfig::default();
        file.server.allowed_origins = vec!["http://localhost:3000".into()];
        assert!(crate::state::check_server(&file.server).is_ok());
    }
}
