//! `twilio-token config check`, and the configuration loading that `serve` shares with it.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use twilio_token_server::AppState;
use twilio_token_server::audit::{SinkKind, mask_password};
use twilio_token_server::config::{
    ApiKeySection, Environment, FileConfig, GrantsSection, LogFormat, ProfileSection,
    ServerSection, add_secret_variables, apply_environment, process_environment, read_file,
};
use twilio_token_server::policy::Rule;
use twilio_token_server::rate_limit::{LimitRule, RateLimitSection};
use twilio_token_server::revocation::RevocationSection;

use crate::cli::ConfigCheckArgs;
use crate::error::CliError;
use crate::output::warn;

/// Hex digits of an API key hash that `config check` shows.
const SHOWN_HASH_DIGITS: usize = 12;

/// A configuration as read, before validation. `Debug` is not derived, because the environment
/// contains API secrets.
pub(crate) struct Loaded {
    /// The file, or the defaults without one, with the environment applied.
    pub(crate) file: FileConfig,
    /// The `TWILIO_*` variables and the variables that `secret_env` keys name.
    pub(crate) environment: Environment,
    /// The folder relative `secret_file` paths are read from.
    pub(crate) base_dir: PathBuf,
}

/// Reads the configuration file, if any, and applies the process environment to it.
///
/// # Errors
///
/// Returns [`CliError::Config`] when the file cannot be read or parsed.
pub(crate) fn load(path: Option<&Path>) -> Result<Loaded, CliError> {
    let mut file = match path {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };

    let mut environment = process_environment();
    apply_environment(&mut file, &environment);
    add_secret_variables(&file, &mut environment);

    let base_dir = path
        .and_then(Path::parent)
        .filter(|folder| !folder.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Ok(Loaded {
        file,
        environment,
        base_dir,
    })
}

/// Returns true when `serve` rejects the start without `--allow-insecure`, because the address
/// is not loopback and no authentication provider is configured.
pub(crate) fn is_exposed_without_auth(state: &AppState) -> bool {
    !state.listen.ip().to_canonical().is_loopback() && state.providers.is_empty()
}

/// Opens the audit log's sink and brings its schema up to date. It blocks, and must run
/// outside a Tokio runtime, because the PostgreSQL client runs one of its own.
///
/// # Errors
///
/// Returns [`CliError::Input`] naming the sink and the cause.
pub(crate) fn open_audit(state: &AppState) -> Result<(), CliError> {
    state.audit.start().map_err(|error| {
        CliError::Input(format!(
            "failed to open the audit log ({}): {}: fix [audit] or the database, or set \
             [audit] sink = \"off\"",
            state.audit.describe(),
            error.message
        ))
    })
}

/// Validates the configuration and returns it as TOML or JSON, with secrets hidden.
///
/// # Errors
///
/// Returns [`CliError::Config`] for the first invalid value.
pub(crate) fn check(args: &ConfigCheckArgs) -> Result<String, CliError> {
    let loaded = load(args.config.as_deref())?;
    let state = AppState::from_config(&loaded.file, &loaded.environment, &loaded.base_dir)?;
    // Opened as `serve` opens it, so that a path that cannot be created or a database that
    // cannot be reached fails the check instead of the start.
    if !args.offline {
        open_audit(&state)?;
    }

    if is_exposed_without_auth(&state) {
        warn(&format!(
            "server.listen {} is not a loopback address and no authentication provider is \
             configured, so serve refuses to start without --allow-insecure",
            state.listen
        ));
    }

    let view = effective_configuration(&loaded.file, &state);
    if args.json {
        let mut text = serde_json::to_string_pretty(&view).unwrap_or_default();
        text.push('\n');
        return Ok(text);
    }
    let mut text = String::from(
        "# The configuration is valid. API secrets are not shown, and API key hashes are \
         shortened.\n",
    );
    if let Value::Object(table) = &view {
        write_toml_table(&mut text, "", table);
    }
    Ok(text)
}

/// Builds the effective configuration: the file as applied, with the values that validation
/// filled in, no secrets and no `null`s.
fn effective_configuration(file: &FileConfig, state: &AppState) -> Value {
    let providers: Vec<&str> = state
        .providers
        .iter()
        .map(|provider| provider.name())
        .collect();
    let users = file.auth.users.as_ref().map(|users| {
        json!({
            "database": users.database.display().to_string(),
            "session_ttl_secs": users.session_ttl_secs,
            "cookie_name": users.cookie_name,
        })
    });
    let api_keys: Vec<Value> = file.auth.api_keys.iter().map(api_key_view).collect();
    let profiles: Vec<Value> = file
        .profiles
        .iter()
        .map(|profile| profile_view(profile, state))
        .collect();
    let rules: Vec<Value> = state
        .policy
        .rules()
        .iter()
        .map(|rule| rule_view(rule, file))
        .collect();

    let mut view = json!({
        "server": server_view(&file.server, state),
        "auth": {
            "order": file.auth.order,
            "providers": providers,
            "users": users,
            "api_keys": api_keys,
            "oidc": serde_json::to_value(&file.auth.oidc).unwrap_or(Value::Null),
            "forward": serde_json::to_value(&file.auth.forward).unwrap_or(Value::Null),
            "trusted_header": serde_json::to_value(&file.auth.trusted_header)
                .unwrap_or(Value::Null),
        },
        "profiles": profiles,
        "policy": { "rules": rules },
        "audit": audit_view(file),
        "log": { "format": log_format_name(file.log.format) },
        "rate_limit": file.rate_limit.as_ref().map(rate_limit_view),
        "revocation": file.revocation.as_ref().map(revocation_view),
        "metrics": {
            "enabled": file.metrics.enabled,
            "listen": file.metrics.listen,
        },
    });
    remove_nulls(&mut view);
    view
}

fn server_view(server: &ServerSection, state: &AppState) -> Value {
    json!({
        "listen": state.listen.to_string(),
        "allowed_origins": server.allowed_origins,
        "trust_forwarded_proto": server.trust_forwarded_proto,
        "data_dir": server.data_dir.display().to_string(),
        "refresh_before_expiry": server.refresh_before_expiry,
        "request_timeout_secs": server.request_timeout_secs,
        "body_limit_bytes": server.body_limit_bytes,
        "shutdown_grace_secs": server.shutdown_grace_secs,
        "header_read_timeout_secs": server.header_read_timeout_secs,
        "max_connections": server.max_connections,
        "demo_page": server.demo_page,
    })
}

/// Shows `[audit]` with any password in the connection string replaced by `***`.
fn audit_view(file: &FileConfig) -> Value {
    let audit = &file.audit;
    json!({
        "sink": audit.sink.as_str(),
        "path": (audit.sink == SinkKind::Sqlite).then(|| audit.path.display().to_string()),
        "url": audit.url.as_deref().map(mask_password),
        "fail_open": audit.fail_open,
        "synchronous": (audit.sink == SinkKind::Sqlite).then(|| audit.synchronous.as_str()),
    })
}

/// Shows `[rate_limit]` with any password in the Redis URL replaced by `***`.
fn rate_limit_view(section: &RateLimitSection) -> Value {
    let rule = |rule: Option<LimitRule>| {
        rule.map(|rule| json!({ "burst": rule.burst, "per_minute": rule.per_minute }))
    };
    json!({
        "store": lowercase_name(section.store),
        "redis_url": section.redis_url.as_deref().map(mask_password),
        "on_redis_error": lowercase_name(section.on_redis_error),
        "key_prefix": section.key_prefix,
        "trusted_proxies": section.trusted_proxies,
        "per_identity": rule(section.per_identity),
        "per_client": rule(section.per_client),
    })
}

/// Shows `[revocation]` with any password in the Redis URL replaced by `***`.
fn revocation_view(section: &RevocationSection) -> Value {
    json!({
        "store": lowercase_name(section.store),
        "database": section.database.display().to_string(),
        "redis_url": section.redis_url.as_deref().map(mask_password),
        "key_prefix": section.key_prefix,
        "refresh_secs": section.refresh_secs,
    })
}

/// Returns a unit variant's name as the configuration file writes it, such as `redis`.
fn lowercase_name(value: impl fmt::Debug) -> String {
    format!("{value:?}").to_lowercase()
}

fn log_format_name(format: LogFormat) -> &'static str {
    match format {
        LogFormat::Plain => "plain",
        LogFormat::Json => "json",
    }
}

fn api_key_view(key: &ApiKeySection) -> Value {
    json!({
        "name": key.name,
        "hash": shorten_hash(&key.hash),
        "identity": key.identity,
        "may_act_for": key.may_act_for,
        "groups": key.groups,
    })
}

/// Shortens `sha256:<64 hex digits>` to its first [`SHOWN_HASH_DIGITS`] digits and `…`.
fn shorten_hash(hash: &str) -> String {
    let (algorithm, digits) = hash.split_once(':').unwrap_or(("", hash));
    let shown: String = digits.chars().take(SHOWN_HASH_DIGITS).collect();
    format!("{algorithm}:{shown}…")
}

fn profile_view(section: &ProfileSection, state: &AppState) -> Value {
    let profile = state.profiles.get(&section.name);
    let signing_key = profile.map(|profile| profile.signing_key().0.to_owned());
    let api_keys: Vec<Value> = section
        .api_keys
        .iter()
        .map(|key| {
            let loaded =
                profile.is_some_and(|profile| profile.keys.iter().any(|(sid, _)| sid == &key.sid));
            json!({
                "sid": key.sid,
                "secret_env": key.secret_env,
                "secret_file": key.secret_file.as_ref().map(|path| path.display().to_string()),
                "secret": if loaded { "set" } else { "not set" },
            })
        })
        .collect();

    json!({
        "name": section.name,
        "account_sid": section.account_sid,
        "region": section.region,
        "signing_key": signing_key,
        "api_keys": api_keys,
        "chat_service_sid": section.chat_service_sid,
        "sync_service_sid": section.sync_service_sid,
        "voice_application_sid": section.voice_application_sid,
        "push_credential_sid": section.push_credential_sid,
        "taskrouter_workspace_sid": section.taskrouter_workspace_sid,
        "endpoint_app_name": section.endpoint_app_name,
    })
}

/// Describes a validated rule. The identities and groups come from the file, because a
/// validated rule keeps them private.
fn rule_view(rule: &Rule, file: &FileConfig) -> Value {
    let section = &file.policy.rules[rule.index];
    json!({
        "identities": section.identities,
        "groups": section.groups,
        "profile": rule.profile,
        "ttl": rule.ttl.as_secs(),
        "max_ttl": rule.max_ttl.as_secs(),
        "grants": grants_view(&rule.grants),
    })
}

fn grants_view(grants: &GrantsSection) -> Value {
    json!({
        "chat": grants.chat.as_ref().map(|chat| json!({ "role_sid": chat.role_sid })),
        "video": grants.video.as_ref().map(|video| json!({ "rooms": video.rooms })),
        "voice": grants.voice.as_ref().map(|voice| json!({
            "incoming": voice.incoming,
            "outgoing": voice.outgoing,
        })),
        "sync": grants.sync.as_ref().map(|_| json!({})),
        "task_router": grants
            .task_router
            .as_ref()
            .map(|task_router| json!({ "role": task_router.role })),
    })
}

/// Removes every `null` member of an object, at any depth. TOML has no null, and an absent
/// member reads the same in JSON.
fn remove_nulls(value: &mut Value) {
    match value {
        Value::Object(members) => {
            members.retain(|_, member| !member.is_null());
            members.values_mut().for_each(remove_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_nulls),
        _ => {}
    }
}

/// Writes the members of `table` as TOML: plain values first, because every key after a
/// `[header]` line belongs to that header's table, then sub-tables and arrays of tables.
fn write_toml_table(out: &mut String, path: &str, table: &Map<String, Value>) {
    for (key, value) in table {
        if !is_table_like(value) {
            let _ = writeln!(out, "{} = {}", toml_key(key), toml_value(value));
        }
    }

    for (key, value) in table {
        let child = if path.is_empty() {
            toml_key(key)
        } else {
            format!("{path}.{}", toml_key(key))
        };
        match value {
            Value::Object(members) => {
                // A table that contains only other tables needs no header of its own.
                if members.is_empty() || !members.values().all(is_table_like) {
                    let _ = writeln!(out, "\n[{child}]");
                }
                write_toml_table(out, &child, members);
            }
            Value::Array(items) if is_table_like(value) => {
                for item in items {
                    let _ = writeln!(out, "\n[[{child}]]");
                    if let Value::Object(members) = item {
                        write_toml_table(out, &child, members);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Returns true for a value written under its own header: an object, or a non-empty array of
/// objects.
fn is_table_like(value: &Value) -> bool {
    match value {
        Value::Object(_) => true,
        Value::Array(items) => !items.is_empty() && items.iter().all(Value::is_object),
        _ => false,
    }
}

/// Writes a key bare when TOML allows it, otherwise quoted.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        toml_string(key)
    }
}

/// Writes a value inline: a string, number, boolean, array or inline table.
fn toml_value(value: &Value) -> String {
    match value {
        Value::Null => "\"\"".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        // serde_json writes floats with a decimal point or an exponent, as TOML needs.
        Value::Number(number) => number.to_string(),
        Value::String(text) => toml_string(text),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(members) if members.is_empty() => "{}".to_owned(),
        Value::Object(members) => {
            let members: Vec<String> = members
                .iter()
                .map(|(key, member)| format!("{} = {}", toml_key(key), toml_value(member)))
                .collect();
            format!("{{ {} }}", members.join(", "))
        }
    }
}

/// Writes a TOML basic string: quotes, with `"`, `\` and control characters escaped.
pub(crate) fn toml_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_string_escapes_quotes_and_controls() {
        assert_eq!(toml_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(toml_string("x\ny\u{7f}\u{1b}"), r#""x\ny\u007F\u001B""#);
        assert_eq!(toml_string("é ✓"), "\"é ✓\"");
    }

    #[test]
    fn toml_output_parses_back() {
        let view = json!({
            "server": { "listen": "127.0.0.1:8080", "refresh_before_expiry": 0.2 },
            "auth": { "order": ["api_key"], "api_keys": [{ "name": "a", "groups": [] }] },
            "policy": { "rules": [{ "ttl": 60, "grants": { "sync": {}, "video": { "rooms": ["*"] } } }] },
        });
        let table = view.as_object().expect("the view is an object");
        let mut text = String::new();

        write_toml_table(&mut text, "", table);

        let parsed: toml::Table = toml::from_str(&text).expect("the output is TOML");
        assert_eq!(
            parsed["server"]["refresh_before_expiry"].as_float(),
            Some(0.2)
        );
        assert_eq!(parsed["policy"]["rules"][0]["ttl"].as_integer(), Some(60));
        assert!(parsed["policy"]["rules"][0]["grants"]["sync"].is_table());
        assert_eq!(parsed["auth"]["api_keys"][0]["name"].as_str(), Some("a"));
    }

    #[test]
    fn login_providers_appear_with_their_defaults() {
        let file = twilio_token_server::config::parse(
            r#"
            [auth]
            order = ["oidc", "forward", "trusted_header"]
            [[auth.oidc.issuers]]
            issuer = "https://id.example.com"
            audiences = ["app"]
            [auth.forward]
            url = "http://127.0.0.1:3000/me"
            [auth.trusted_header]
            trusted_proxies = ["127.0.0.1/32"]
            [[profiles]]
            account_sid = "AC0123456789abcdef0123456789abcdef"
            api_keys = [{ sid = "SKfedcba9876543210fedcba9876543210", secret_env = "S" }]
            "#,
        )
        .expect("valid TOML");
        let environment = twilio_token_server::config::Environment::from([(
            "S".to_owned(),
            "FAKEsecretDoNotUse0123456789abcd".to_owned(),
        )]);
        let state = AppState::from_config(&file, &environment, Path::new(".")).expect("valid");

        let view = effective_configuration(&file, &state);

        assert_eq!(
            view["auth"]["providers"],
            json!(["oidc", "forward", "trusted_header"])
        );
        let issuer = &view["auth"]["oidc"]["issuers"][0];
        assert_eq!(issuer["identity_claim"], "sub");
        assert_eq!(
            issuer["algorithms"],
            json!(["RS256", "PS256", "ES256", "EdDSA"])
        );
        assert_eq!(view["auth"]["oidc"]["leeway_secs"], 60);
        assert_eq!(view["auth"]["forward"]["timeout_ms"], 2000);
        assert_eq!(
            view["auth"]["trusted_header"]["identity_header"],
            "x-forwarded-user"
        );
    }

    #[test]
    fn shorten_hash_keeps_prefix() {
        let hash = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(shorten_hash(&hash), "sha256:abababababab…");
    }
}
