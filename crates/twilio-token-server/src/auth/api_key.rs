//! Static bearer keys for backend-to-backend calls.
//!
//! Keys look like `ttk_` followed by 43 base64url characters (32 random bytes). The
//! configuration stores only `sha256:<hex>` of each key; a presented key is hashed and compared
//! with every configured hash in constant time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthFuture, AuthProvider, AuthRequest, Principal, bearer_token};
use crate::config::{ApiKeySection, ConfigError};
use crate::error::ApiError;
use crate::pattern::Pattern;

/// The prefix of every key this server generates, so other bearer tokens (such as OpenID
/// Connect ones) are passed on to the next provider.
pub const KEY_PREFIX: &str = "ttk_";

/// A configured key: its name, hash and what it may do.
#[derive(Clone)]
pub struct ApiKey {
    name: String,
    hash: [u8; 32],
    identity: Option<String>,
    may_act_for: Option<Pattern>,
    groups: Vec<String>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("may_act_for", &self.may_act_for)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// Validates a configured key.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] for a hash that is not `sha256:` and 64 hex digits, or a key
    /// with neither an identity nor permission to act for others.
    pub fn from_config(index: usize, section: &ApiKeySection) -> Result<Self, ConfigError> {
        let key = format!("auth.api_keys[{index}] ({})", section.name);
        let hash = parse_hash(&section.hash).ok_or_else(|| {
            ConfigError::new(
                format!("{key}.hash"),
                "expected sha256: followed by 64 hex digits, as `twilio-token api-key generate` \
                 prints",
            )
        })?;
        if section.may_act_for.as_deref() == Some("") {
            return Err(ConfigError::new(
                format!("{key}.may_act_for"),
                "the pattern is empty, so the key may act for nobody: set a pattern such as \
                 \"customer-*\", or remove may_act_for",
            ));
        }
        if section.identity.is_none() && section.may_act_for.is_none() {
            return Err(ConfigError::new(
                key,
                "the key has neither identity nor may_act_for: set identity for a fixed \
                 identity, or may_act_for to a pattern of identities it may request",
            ));
        }
        Ok(ApiKey {
            name: section.name.clone(),
            hash,
            identity: section.identity.clone(),
            may_act_for: section.may_act_for.as_deref().map(Pattern::new),
            groups: section.groups.clone(),
        })
    }
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (index, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(hash)
}

/// Generates a new key and returns it with its `sha256:` hash for the configuration.
pub fn generate_key() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_key(&key);
    (key, hash)
}

/// Returns `sha256:<hex>` of a key.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// The `api_key` provider.
#[derive(Debug, Clone)]
pub struct ApiKeyProvider {
    keys: Vec<ApiKey>,
}

impl ApiKeyProvider {
    /// Creates the provider from validated keys.
    pub fn new(keys: Vec<ApiKey>) -> Self {
        ApiKeyProvider { keys }
    }

    fn find(&self, presented: &str) -> Option<&ApiKey> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare with every key so the time taken does not depend on which one matched.
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.hash.ct_eq(&digest)) {
                found = Some(key);
            }
        }
        found
    }
}

impl AuthProvider for ApiKeyProvider {
    fn name(&self) -> &'static str {
        "api_key"
    }

    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a> {
        let result = match bearer_token(request.headers) {
            Some(token) if token.starts_with(KEY_PREFIX) => match self.find(token) {
                Some(key) => Ok(Some(Principal {
                    identity: key.identity.clone(),
                    groups: key.groups.clone(),
                    method: "api_key",
                    subject: key.name.clone(),
                    may_act_for: key.may_act_for.clone(),
                })),
                None => Err(ApiError::unauthorized(
                    "invalid_api_key",
                    "the API key is not valid: check the Authorization header",
                )),
            },
            _ => Ok(None),
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_matches_its_hash() {
        let (key, hash) = generate_key();
        assert!(key.starts_with(KEY_PREFIX));
        assert_eq!(key.len(), KEY_PREFIX.len() + 43);
        assert_eq!(hash_key(&key), hash);
        assert!(parse_hash(&hash).is_some());
    }

    #[test]
    fn malformed_hashes_rejected() {
        assert_eq!(parse_hash("sha256:abc"), None);
        assert_eq!(parse_hash(&format!("md5:{}", "0".repeat(64))), None);
        assert_eq!(parse_hash(&format!("sha256:{}", "g".repeat(64))), None);
    }
}
