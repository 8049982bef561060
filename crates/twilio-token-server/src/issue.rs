//! Turning an authenticated caller and a token request into an Access Token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use serde::{Deserialize, Serialize};
use twilio_access_token::{
    AccessToken, ChatGrant, MintError, SyncGrant, TaskRouterGrant, Ttl, VideoGrant, VoiceGrant,
    endpoint_id, validate_identity,
};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::config::Profile;
use crate::error::{ApiError, echo};
use crate::policy::{GRANT_NAMES, Policy, Rule};

/// The fields a caller may send. Every field is optional, and the caller can only narrow what
/// policy allows.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// A subset of the grants policy allows: `chat`, `video`, `voice`, `sync`, `task_router`.
    /// Default: all of them.
    pub grants: Option<Vec<String>>,
    /// Lifetime in seconds, at most the policy's maximum. Default: the policy's TTL.
    pub ttl: Option<u64>,
    /// Device id for the legacy Chat endpoint id `app:identity:device`, when the profile sets
    /// an app name.
    pub device_id: Option<String>,
    /// The Video room, when policy allows rooms by pattern.
    pub room: Option<String>,
    /// The identity to mint for; only for API keys allowed to act for others.
    pub identity: Option<String>,
}

/// A minted token and when to refresh it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The identity the token was minted for.
    pub identity: String,
    /// The Access Token (a JWT).
    pub token: String,
    /// Lifetime in seconds.
    pub ttl: u64,
    /// Expiry, in Unix seconds.
    pub expires_at: u64,
    /// When the client should fetch a new token, in Unix seconds.
    pub refresh_after: u64,
    /// The server's clock when the token was minted, in Unix seconds, so clients can correct
    /// for their own clock's offset.
    pub server_time: u64,
}

impl TokenResponse {
    /// Returns the response as compact JSON, as serde_json writes it, without serde's
    /// per-byte escaping of the token: the load benchmark spent about a tenth of each request
    /// on that.
    pub fn to_json(&self) -> Vec<u8> {
        debug_assert!(
            self.token
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.')),
            "a minted token is base64url and dots"
        );
        let mut out = Vec::with_capacity(self.token.len() + self.identity.len() + 160);
        out.extend_from_slice(b"{\"identity\":");
        push_json_string(&mut out, &self.identity);
        out.extend_from_slice(b",\"token\":\"");
        out.extend_from_slice(self.token.as_bytes());
        out.extend_from_slice(b"\",\"ttl\":");
        push_u64(&mut out, self.ttl);
        out.extend_from_slice(b",\"expires_at\":");
        push_u64(&mut out, self.expires_at);
        out.extend_from_slice(b",\"refresh_after\":");
        push_u64(&mut out, self.refresh_after);
        out.extend_from_slice(b",\"server_time\":");
        push_u64(&mut out, self.server_time);
        out.push(b'}');
        out
    }
}

/// Writes `text` as a JSON string with the escapes serde_json uses.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..index]);
        out.extend_from_slice(escape);
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Returns `<API key SID>-<issued at>`, the `jti` every official library writes, without
/// `format!`, which cost about 1k instructions per request.
fn jti(api_key_sid: &str, issued_at: u64) -> String {
    let mut jti = Vec::with_capacity(api_key_sid.len() + 21);
    jti.extend_from_slice(api_key_sid.as_bytes());
    jti.push(b'-');
    push_u64(&mut jti, issued_at);
    String::from_utf8(jti).unwrap_or_default()
}

/// Writes `value` in decimal.
fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0_u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// The decision and the minted token, for the response and the logs.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The response body.
    pub response: TokenResponse,
    /// The profile used.
    pub profile: String,
    /// The grants issued, by request name.
    pub grants: Vec<&'static str>,
    /// The token's `jti`.
    pub jti: String,
}

/// Applies policy to a request and mints the token.
///
/// # Errors
///
/// Returns 400 for malformed requests, 403 for anything policy does not allow, and 500 when a
/// validated configuration still fails to mint (a bug).
pub fn issue(
    principal: &Principal,
    request: &TokenRequest,
    policy: &Policy,
    profiles: &HashMap<String, Profile>,
    cache: &TokenCache,
    refresh_before_expiry: f64,
    now: u64,
) -> Result<Issued, ApiError> {
    let identity = resolve_identity(principal, request.identity.as_deref())?;
    let Some(rule) = policy.rule_for(&identity, &principal.groups) else {
        return Err(ApiError::forbidden(
            "no_matching_rule",
            format!(
                "no policy rule matches the identity {identity:?}: ask the operator to add a rule \
                 for it or one of its groups"
            ),
        ));
    };
    let profile = profiles.get(&rule.profile).ok_or(ApiError::Internal)?;
    let grants = requested_grants(rule, request.grants.as_deref())?;
    let ttl = requested_ttl(rule, request.ttl)?;

    if request.room.is_some() && !grants.contains(&"video") {
        return Err(ApiError::bad_request(
            "room_without_video",
            "room was given but no Video grant is issued: ask for the video grant too",
        ));
    }
    if request.device_id.is_some() && !grants.contains(&"chat") {
        return Err(ApiError::bad_request(
            "device_without_chat",
            "device_id was given but no Chat grant is issued: ask for the chat grant too",
        ));
    }

    // Without a room or device id the token depends on the caller only through the identity,
    // so one built token per rule, grant set and TTL serves every caller.
    let cache_key = (request.room.is_none() && request.device_id.is_none())
        .then(|| (rule.index, grant_bits(&grants), ttl.as_secs()));
    let entries = cache.entries.load();
    let cached = cache_key.and_then(|key| entries.get(&key));
    let jwt = match cached {
        Some(token) => token.to_jwt_for(&identity, now),
        None => {
            let token = build_token(rule, profile, &identity, request, &grants, ttl)?;
            let jwt = token.to_jwt_at(now);
            if let Some(key) = cache_key {
                cache.insert(key, token);
            }
            jwt
        }
    }
    .map_err(|error| mint_failure(error, profile))?;

    let ttl_secs = ttl.as_secs();
    let expires_at = now + ttl_secs;
    let refresh_margin = ((ttl_secs as f64) * refresh_before_expiry).round() as u64;
    Ok(Issued {
        response: TokenResponse {
            identity,
            token: jwt,
            ttl: ttl_secs,
            expires_at,
            refresh_after: expires_at - refresh_margin.clamp(1, ttl_secs),
            server_time: now,
        },
        profile: profile.name.clone(),
        grants,
        jti: jti(profile.signing_key().0, now),
    })
}

/// Builds the token for a request that policy allows.
fn build_token(
    rule: &Rule,
    profile: &Profile,
    identity: &str,
    request: &TokenRequest,
    grants: &[&'static str],
    ttl: Ttl,
) -> Result<AccessToken, ApiError> {
    let (api_key_sid, secret) = profile.signing_key();
    let mut builder = AccessToken::builder()
        .account_sid(&profile.account_sid)
        .api_key_sid(api_key_sid)
        .api_secret(secret.clone())
        .identity(identity)
        .ttl(ttl);
    if let Some(region) = &profile.region {
        builder = builder.region(region.as_str());
    }
    for name in grants {
        builder = match *name {
            "chat" => builder.grant(chat_grant(rule, profile, identity, request)?),
            "video" => builder.grant(video_grant(rule, request.room.as_deref())?),
            "voice" => builder.grant(voice_grant(rule, profile)),
            "sync" => builder.grant(sync_grant(profile)),
            _ => builder.grant(task_router_grant(rule, profile)),
        };
    }
    builder
        .build()
        .map_err(|error| mint_failure(error, profile))
}

fn mint_failure(error: MintError, profile: &Profile) -> ApiError {
    match error {
        // Long request values (a room, a device id) can push the token over the verifiers' limit.
        MintError::TokenTooLarge { .. } => {
            ApiError::bad_request("token_too_large", error.to_string())
        }
        error => {
            tracing::error!(%error, profile = %profile.name, "minting failed for a validated profile");
            ApiError::Internal
        }
    }
}

/// Returns the grant set as bits in [`GRANT_NAMES`] order.
fn grant_bits(grants: &[&'static str]) -> u8 {
    grants
        .iter()
        .filter_map(|name| GRANT_NAMES.iter().position(|known| known == name))
        .fold(0, |bits, index| bits | 1 << index)
}

/// The largest number of built tokens kept; requests beyond it build their token each time.
const MAX_CACHED_TOKENS: usize = 1024;

/// Built tokens by rule, grant set and TTL, shared by all requests.
///
/// Requests read the map without taking a lock. A new entry replaces the whole map, which happens
/// at most [`MAX_CACHED_TOKENS`] times.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: ArcSwap<HashMap<(usize, u8, u64), Arc<AccessToken>>>,
    /// Held while a new entry is added, so that two writers cannot lose each other's entry.
    adding: Mutex<()>,
}

impl TokenCache {
    fn insert(&self, key: (usize, u8, u64), token: AccessToken) {
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let entries = self.entries.load();
        if entries.len() >= MAX_CACHED_TOKENS || entries.contains_key(&key) {
            return;
        }
        let mut grown = HashMap::clone(&entries);
        grown.insert(key, Arc::new(token));
        self.entries.store(Arc::new(grown));
    }
}

pub(crate) fn resolve_identity(
    principal: &Principal,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    let identity = match (requested, &principal.may_act_for, &principal.identity) {
        (Some(requested), Some(pattern), _) => {
            // Checked before the pattern, so an empty or overlong identity gets the same 400 as
            // one from any other source, and the 403 below never echoes an overlong value.
            validate_identity(requested)
                .map_err(|error| ApiError::bad_request("invalid_identity", error.to_string()))?;
            if !pattern.matches(requested) {
                return Err(ApiError::forbidden(
                    "identity_not_allowed",
                    format!(
                        "this caller may not request tokens for {:?}: it may act only for \
                         identities matching {pattern}",
                        echo(requested)
                    ),
                ));
            }
            requested.to_owned()
        }
        (Some(_), None, _) => {
            return Err(ApiError::forbidden(
                "identity_not_allowed",
                "the identity comes from your sign-in and cannot be chosen: remove identity from \
                 the request",
            ));
        }
        (None, _, Some(own)) => own.clone(),
        (None, _, None) => {
            return Err(ApiError::bad_request(
                "identity_required",
                "this API key has no identity of its own: name one with identity in the request",
            ));
        }
    };
    validate_identity(&identity)
        .map_err(|error| ApiError::bad_request("invalid_identity", error.to_string()))?;
    Ok(identity)
}

fn requested_grants(
    rule: &Rule,
    requested: Option<&[String]>,
) -> Result<Vec<&'static str>, ApiError> {
    let allowed = rule.grant_names();
    let Some(requested) = requested else {
        return Ok(allowed);
    };
    if requested.is_empty() {
        return Err(ApiError::bad_request(
            "no_grants",
            format!(
                "grants is empty, so the token would allow nothing: ask for some of {}, or leave \
                 grants out for all that policy allows",
                allowed.join(", ")
            ),
        ));
    }
    let mut grants = Vec::with_capacity(requested.len());
    for name in requested {
        let Some(known) = GRANT_NAMES.iter().find(|known| *known == name) else {
            return Err(ApiError::bad_request(
                "unknown_grant",
                format!(
                    "unknown grant {name:?}: the grants are {}",
                    GRANT_NAMES.join(", ")
                ),
            ));
        };
        if !allowed.contains(known) {
            return Err(ApiError::forbidden(
                "grant_not_allowed",
                format!(
                    "policy does not allow the {name} grant for this identity: allowed are {}",
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ));
        }
        if !grants.contains(known) {
            grants.push(*known);
        }
    }
    Ok(grants)
}

fn requested_ttl(rule: &Rule, requested: Option<u64>) -> Result<Ttl, ApiError> {
    let Some(secs) = requested else {
        return Ok(rule.ttl);
    };
    if secs == 0 || secs > rule.max_ttl.as_secs() {
        return Err(ApiError::forbidden(
            "ttl_not_allowed",
            format!(
                "a ttl of {secs} seconds is not allowed: ask for 1 to {} seconds",
                rule.max_ttl
            ),
        ));
    }
    Ttl::from_secs(secs).map_err(|error| ApiError::bad_request("invalid_ttl", error.to_string()))
}

fn chat_grant(
    rule: &Rule,
    profile: &Profile,
    identity: &str,
    request: &TokenRequest,
) -> Result<ChatGrant, ApiError> {
    let services = &profile.services;
    let mut grant = ChatGrant::new();
    grant.service_sid = services.chat_service_sid.clone();
    grant.push_credential_sid = services.push_credential_sid.clone();
    grant.deployment_role_sid = rule
        .grants
        .chat
        .as_ref()
        .and_then(|chat| chat.role_sid.clone());
    if let Some(device) = &request.device_id {
        let Some(app) = &services.endpoint_app_name else {
            return Err(ApiError::bad_request(
                "device_id_not_used",
                "device_id is only used when the profile sets endpoint_app_name for legacy Chat \
                 endpoint ids: remove it from the request",
            ));
        };
        let endpoint = endpoint_id(app, identity, device)
            .map_err(|error| ApiError::bad_request("invalid_device_id", error.to_string()))?;
        grant.endpoint_id = Some(endpoint);
    }
    Ok(grant)
}

fn video_grant(rule: &Rule, room: Option<&str>) -> Result<VideoGrant, ApiError> {
    let Some(room) = room else {
        // A Video grant without a room allows every room, so a rule that limits rooms must
        // never issue one. A rule with the pattern `*` allows every room anyway.
        let any_room = rule.rooms.iter().any(|pattern| pattern.as_str() == "*");
        if !rule.rooms.is_empty() && !any_room {
            return Err(ApiError::bad_request(
                "room_required",
                "policy limits this identity to certain Video rooms: name one with room",
            ));
        }
        return Ok(VideoGrant::new());
    };
    if room.is_empty() || room.chars().any(char::is_control) || room.chars().count() > 256 {
        return Err(ApiError::bad_request(
            "invalid_room",
            "room must be 1 to 256 characters without control characters",
        ));
    }
    if !rule.rooms.iter().any(|pattern| pattern.matches(room)) {
        let allowed: Vec<&str> = rule.rooms.iter().map(|pattern| pattern.as_str()).collect();
        return Err(ApiError::forbidden(
            "room_not_allowed",
            if allowed.is_empty() {
                "policy does not let this identity choose a room".to_owned()
            } else {
                format!(
                    "the room {room:?} does not match the allowed patterns: {}",
                    allowed.join(", ")
                )
            },
        ));
    }
    Ok(VideoGrant::new().room(room))
}

fn voice_grant(rule: &Rule, profile: &Profile) -> VoiceGrant {
    let voice = rule.grants.voice.clone().unwrap_or_default();
    let mut grant = VoiceGrant::new().incoming_allow(voice.incoming);
    if voice.outgoing {
        grant.outgoing_application_sid = profile.services.voice_application_sid.clone();
    }
    grant.push_credential_sid = profile.services.push_credential_sid.clone();
    grant
}

fn sync_grant(profile: &Profile) -> SyncGrant {
    let mut grant = SyncGrant::new();
    grant.service_sid = profile.services.sync_service_sid.clone();
    grant
}

fn task_router_grant(rule: &Rule, profile: &Profile) -> TaskRouterGrant {
    let mut grant = TaskRouterGrant::new();
    grant.workspace_sid = profile.services.taskrouter_workspace_sid.clone();
    grant.role = rule
        .grants
        .task_router
        .as_ref()
        .and_then(|rule| rule.role.clone());
    grant
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(identity: &str, numbers: u64) -> TokenResponse {
        TokenResponse {
            identity: identity.to_owned(),
            token: "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJTSy0xIn0.abc-_DEF123".to_owned(),
            ttl: numbers,
            expires_at: numbers.saturating_mul(7),
            refresh_after: numbers / 3,
            server_time: u64::MAX - numbers,
        }
    }

    #[test]
    fn jti_is_key_sid_and_issue_time() {
        for issued_at in [0, 7, 1_700_000_000, u64::MAX] {
            assert_eq!(
                jti("SK0123456789abcdef0123456789abcdef", issued_at),
                format!("SK0123456789abcdef0123456789abcdef-{issued_at}")
            );
        }
    }

    #[test]
    fn json_is_what_serde_writes() {
        let control: String = (0_u8..0x20).map(char::from).collect();
        let identities = [
            "alice",
            "",
            "quote \" and backslash \\",
            "été 👩‍💻 \u{7f} \u{2028}",
            control.as_str(),
        ];
        for identity in identities {
            for numbers in [0, 1, 9, 10, 3600, 1_700_000_000, u64::MAX] {
                let response = response(identity, numbers);
                let expected = serde_json::to_vec(&response).expect("serializes");
                assert_eq!(
                    String::from_utf8(response.to_json()).expect("UTF-8"),
                    String::from_utf8(expected).expect("UTF-8"),
                    "{identity:?} {numbers}"
                );
            }
        }
    }
}
