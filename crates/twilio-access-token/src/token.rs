//! The Access Token builder and minting.

use std::fmt;

use crate::clock::{Clock, SystemClock};
use crate::decode::MAX_TOKEN_BYTES;
use crate::error::MintError;
use crate::grants::Grant;
use crate::identity::validate_identity;
use crate::json::{self, MAX_SAFE_INTEGER};
use crate::jwt::HeaderKey;
use crate::region::validate_region;
use crate::secret::ApiSecret;
use crate::sid::{SidKind, validate_sid};
use crate::ttl::Ttl;

/// The largest issue time accepted: 10^11 seconds, in the year 5138. Millisecond times of today
/// are above it, and `exp` computed from it stays far below 2^53.
pub const MAX_ISSUE_TIME: u64 = 100_000_000_000;

/// A validated Access Token, ready to be minted (signed) at any issue time.
///
/// Build one with [`AccessToken::builder`]. Everything but the issue time is checked and
/// serialized once when it is built, so minting the same token again is cheap.
///
/// The token is written byte for byte as twilio-node writes it: header `alg,typ,cty[,twr]`,
/// payload `jti,grants,[nbf],iat,exp,iss,sub`, `identity` first in `grants` followed by the
/// grants in the order they were added, compact JSON in raw UTF-8.
///
/// # Examples
///
/// ```
/// use twilio_access_token::{AccessToken, ApiSecret, ChatGrant};
///
/// let token = AccessToken::builder()
///     .account_sid("AC0123456789abcdef0123456789abcdef")
///     .api_key_sid("SKfedcba9876543210fedcba9876543210")
///     .api_secret(ApiSecret::new("FAKEsecretDoNotUse0123456789abcd"))
///     .identity("alice")
///     .grant(ChatGrant::new().service_sid("IS00000000000000000000000000000001"))
///     .build()?;
///
/// let jwt = token.to_jwt_at(1_700_000_000)?;
/// assert_eq!(jwt.split('.').count(), 3);
/// # Ok::<(), twilio_access_token::MintError>(())
/// ```
#[derive(Clone)]
pub struct AccessToken {
    account_sid: String,
    api_key_sid: String,
    identity: String,
    ttl: Ttl,
    nbf: Option<u64>,
    region: Option<String>,
    grants: Vec<Grant>,
    key: HeaderKey,
    /// The identity as a JSON string.
    identity_json: Vec<u8>,
    /// The grants after the identity, `,"chat":{…},…}`, as written in the payload.
    grants_json: Vec<u8>,
    /// The largest length the token can have, for the size check of [`AccessToken::to_jwt_for`].
    max_token: usize,
}

impl AccessToken {
    /// Starts a builder with the default lifetime (3600 seconds), no `nbf`, no region and no
    /// grants.
    pub fn builder() -> AccessTokenBuilder {
        AccessTokenBuilder::default()
    }

    /// Mints the token as issued at `issued_at`, in Unix seconds: `iat` is `issued_at`, `exp`
    /// is `issued_at` plus the lifetime, and `jti` is `<API key SID>-<issued_at>`.
    ///
    /// # Errors
    ///
    /// Returns [`MintError::IssueTimeOutOfRange`] when `issued_at` is above
    /// 100,000,000,000 (the year 5138), which is almost always a time in milliseconds, and
    /// [`MintError::NbfNotBeforeExpiry`] when `nbf` is not before `exp`.
    pub fn to_jwt_at(&self, issued_at: u64) -> Result<String, MintError> {
        self.mint(&self.identity_json, issued_at)
    }

    /// Mints the same token for another identity, as issued at `issued_at`.
    ///
    /// Everything but the identity was checked and serialized when the token was built, so a
    /// server can build one token per policy and mint it for each caller cheaply.
    ///
    /// # Errors
    ///
    /// Returns [`MintError::InvalidIdentity`] for an identity the builder would reject,
    /// [`MintError::TokenTooLarge`] when the identity makes the token too long, and the errors
    /// of [`AccessToken::to_jwt_at`].
    ///
    /// # Examples
    ///
    /// ```
    /// use twilio_access_token::{AccessToken, VideoGrant};
    ///
    /// let template = AccessToken::builder()
    ///     .account_sid("AC0123456789abcdef0123456789abcdef")
    ///     .api_key_sid("SKfedcba9876543210fedcba9876543210")
    ///     .api_secret("FAKEsecretDoNotUse0123456789abcd")
    ///     .identity("alice")
    ///     .grant(VideoGrant::new())
    ///     .build()?;
    /// let bob = template.to_jwt_for("bob", 1_700_000_000)?;
    /// let direct = AccessToken::builder()
    ///     .account_sid("AC0123456789abcdef0123456789abcdef")
    ///     .api_key_sid("SKfedcba9876543210fedcba9876543210")
    ///     .api_secret("FAKEsecretDoNotUse0123456789abcd")
    ///     .identity("bob")
    ///     .grant(VideoGrant::new())
    ///     .build()?
    ///     .to_jwt_at(1_700_000_000)?;
    /// assert_eq!(bob, direct);
    /// # Ok::<(), twilio_access_token::MintError>(())
    /// ```
    pub fn to_jwt_for(&self, identity: &str, issued_at: u64) -> Result<String, MintError> {
        validate_identity(identity)?;
        let mut identity_json = Vec::with_capacity(identity.len() + 2);
        json::write_str(&mut identity_json, identity);
        let max_token = self.max_token - self.identity_json.len() + identity_json.len();
        if max_token > MAX_TOKEN_BYTES {
            return Err(MintError::TokenTooLarge { bytes: max_token });
        }
        self.mint(&identity_json, issued_at)
    }

    fn mint(&self, identity_json: &[u8], issued_at: u64) -> Result<String, MintError> {
        if issued_at > MAX_ISSUE_TIME {
            return Err(MintError::IssueTimeOutOfRange { issued_at });
        }
        let expires_at = issued_at + self.ttl.as_secs();
        if let Some(nbf) = self.nbf.filter(|nbf| *nbf >= expires_at) {
            return Err(MintError::NbfNotBeforeExpiry {
                nbf,
                exp: expires_at,
            });
        }

        let grants_len = GRANTS_START.len() + identity_json.len() + self.grants_json.len();
        let capacity = payload_capacity(grants_len, &self.api_key_sid, &self.account_sid);
        let mut payload = Vec::with_capacity(capacity);
        payload.extend_from_slice(br#"{"jti":""#);
        payload.extend_from_slice(self.api_key_sid.as_bytes());
        payload.push(b'-');
        json::write_u64(&mut payload, issued_at);
        payload.extend_from_slice(b"\",");
        payload.extend_from_slice(GRANTS_START);
        payload.extend_from_slice(identity_json);
        payload.extend_from_slice(&self.grants_json);
        if let Some(nbf) = self.nbf {
            payload.extend_from_slice(br#","nbf":"#);
            json::write_u64(&mut payload, nbf);
        }
        payload.extend_from_slice(br#","iat":"#);
        json::write_u64(&mut payload, issued_at);
        payload.extend_from_slice(br#","exp":"#);
        json::write_u64(&mut payload, expires_at);
        payload.extend_from_slice(br#","iss":""#);
        payload.extend_from_slice(self.api_key_sid.as_bytes());
        payload.extend_from_slice(br#"","sub":""#);
        payload.extend_from_slice(self.account_sid.as_bytes());
        payload.extend_from_slice(b"\"}");

        Ok(self.key.sign(&payload))
    }

    /// Mints the token as issued at the time `clock` returns.
    ///
    /// # Errors
    ///
    /// Returns [`MintError::ClockBeforeEpoch`] when the clock has no Unix time, and the errors
    /// of [`AccessToken::to_jwt_at`].
    pub fn to_jwt_with(&self, clock: &impl Clock) -> Result<String, MintError> {
        let issued_at = clock.now().ok_or(MintError::ClockBeforeEpoch)?;
        self.to_jwt_at(issued_at)
    }

    /// Mints the token as issued now, by the system clock.
    ///
    /// # Errors
    ///
    /// The errors of [`AccessToken::to_jwt_with`].
    pub fn to_jwt(&self) -> Result<String, MintError> {
        self.to_jwt_with(&SystemClock)
    }

    /// Returns the account SID, written as `sub`.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// Returns the API key SID, written as `iss`.
    pub fn api_key_sid(&self) -> &str {
        &self.api_key_sid
    }

    /// Returns the identity, written as `grants.identity`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Returns the lifetime.
    pub fn ttl(&self) -> Ttl {
        self.ttl
    }

    /// Returns the not-before time, if one was set.
    pub fn nbf(&self) -> Option<u64> {
        self.nbf
    }

    /// Returns the region, written as the `twr` header, if one was set.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// Returns the grants in the order they are written.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("account_sid", &self.account_sid)
            .field("api_key_sid", &self.api_key_sid)
            .field("api_secret", &"<redacted>")
            .field("identity", &self.identity)
            .field("ttl", &self.ttl)
            .field("nbf", &self.nbf)
            .field("region", &self.region)
            .field("grants", &self.grants)
            .finish()
    }
}

/// Builder for [`AccessToken`]. Every check runs in [`AccessTokenBuilder::build`].
#[derive(Clone, Default)]
#[must_use]
pub struct AccessTokenBuilder {
    account_sid: Option<String>,
    api_key_sid: Option<String>,
    api_secret: Option<ApiSecret>,
    identity: Option<String>,
    ttl: Option<Result<Ttl, crate::TtlError>>,
    nbf: Option<u64>,
    region: Option<String>,
    grants: Vec<Grant>,
}

impl AccessTokenBuilder {
    /// Sets the account SID (`AC…`), written as `sub`.
    pub fn account_sid(mut self, sid: impl Into<String>) -> Self {
        self.account_sid = Some(sid.into());
        self
    }

    /// Sets the API key SID (`SK…`), written as `iss` and at the start of `jti`.
    pub fn api_key_sid(mut self, sid: impl Into<String>) -> Self {
        self.api_key_sid = Some(sid.into());
        self
    }

    /// Sets the API key's secret, the HMAC-SHA256 key.
    pub fn api_secret(mut self, secret: impl Into<ApiSecret>) -> Self {
        self.api_secret = Some(secret.into());
        self
    }

    /// Sets the identity: 1 to 256 characters without control characters.
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// Sets the lifetime. The default is 3600 seconds.
    pub fn ttl(mut self, ttl: Ttl) -> Self {
        self.ttl = Some(Ok(ttl));
        self
    }

    /// Sets the lifetime in seconds, checked by [`build`](Self::build) to be 1 to 86400.
    pub fn ttl_secs(mut self, secs: u64) -> Self {
        self.ttl = Some(Ttl::from_secs(secs));
        self
    }

    /// Sets the not-before time (`nbf`) in Unix seconds. By default the token has no `nbf`.
    pub fn nbf(mut self, nbf: u64) -> Self {
        self.nbf = Some(nbf);
        self
    }

    /// Sets the region, written as the `twr` header, such as `us1`, `ie1` or `au1`. An empty
    /// string means no region, as in the official libraries.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Adds a grant. A grant of a type already added replaces the earlier one in its position.
    pub fn grant(mut self, grant: impl Into<Grant>) -> Self {
        let grant = grant.into();
        match self
            .grants
            .iter_mut()
            .find(|existing| existing.key() == grant.key())
        {
            Some(existing) => *existing = grant,
            None => self.grants.push(grant),
        }
        self
    }

    /// Checks every field and serializes everything but the issue time.
    ///
    /// # Errors
    ///
    /// Returns the [`MintError`] for the first problem, checked in this order: account SID, API
    /// key SID, API secret, identity, lifetime, `nbf`, region, then each grant in order.
    pub fn build(self) -> Result<AccessToken, MintError> {
        let account_sid = self.account_sid.ok_or(MintError::MissingAccountSid)?;
        validate_sid(SidKind::Account, &account_sid).map_err(|error| MintError::InvalidSid {
            field: "sub",
            error,
        })?;

        let api_key_sid = self.api_key_sid.ok_or(MintError::MissingApiKeySid)?;
        validate_sid(SidKind::ApiKey, &api_key_sid).map_err(|error| MintError::InvalidSid {
            field: "iss",
            error,
        })?;

        let secret = self.api_secret.ok_or(MintError::MissingApiSecret)?;
        check_secret(&secret)?;

        let identity = self.identity.ok_or(MintError::MissingIdentity)?;
        validate_identity(&identity)?;

        let ttl = self.ttl.unwrap_or(Ok(Ttl::DEFAULT))?;

        if let Some(nbf) = self.nbf.filter(|nbf| *nbf > MAX_SAFE_INTEGER) {
            return Err(MintError::TimeOutOfRange {
                claim: "nbf",
                value: nbf,
            });
        }

        let region = self.region.filter(|region| !region.is_empty());
        if let Some(region) = &region {
            validate_region(region)?;
        }

        for grant in &self.grants {
            grant.validate()?;
        }

        let mut identity_json = Vec::with_capacity(identity.len() + 2);
        json::write_str(&mut identity_json, &identity);
        let grants_json = write_grants(&self.grants);
        let key = HeaderKey::new(&secret, region.as_deref());
        let grants_len = GRANTS_START.len() + identity_json.len() + grants_json.len();
        let max_payload = payload_capacity(grants_len, &api_key_sid, &account_sid);
        let max_token = key.prefix_len() + (max_payload * 4).div_ceil(3) + 1 + 43;
        if max_token > MAX_TOKEN_BYTES {
            return Err(MintError::TokenTooLarge { bytes: max_token });
        }
        Ok(AccessToken {
            account_sid,
            api_key_sid,
            identity,
            ttl,
            nbf: self.nbf,
            region,
            grants: self.grants,
            key,
            identity_json,
            grants_json,
            max_token,
        })
    }
}

impl fmt::Debug for AccessTokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenBuilder")
            .field("account_sid", &self.account_sid)
            .field("api_key_sid", &self.api_key_sid)
            .field("api_secret", &self.api_secret)
            .field("identity", &self.identity)
            .field("ttl", &self.ttl)
            .field("nbf", &self.nbf)
            .field("region", &self.region)
            .field("grants", &self.grants)
            .finish()
    }
}

/// Returns the largest payload length: the grants, 51 bytes of claim names and punctuation, the
/// SIDs, and up to 16 digits for each of the four numbers.
fn payload_capacity(grants_len: usize, api_key_sid: &str, account_sid: &str) -> usize {
    grants_len + 2 * api_key_sid.len() + account_sid.len() + 51 + 64
}

fn check_secret(secret: &ApiSecret) -> Result<(), MintError> {
    let bytes = secret.expose_secret();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Err(MintError::EmptyApiSecret);
    };
    if first.is_ascii_whitespace() || last.is_ascii_whitespace() {
        return Err(MintError::ApiSecretWhitespace);
    }
    Ok(())
}

/// The start of the `grants` claim, up to the identity's value.
const GRANTS_START: &[u8] = br#""grants":{"identity":"#;

/// Writes what follows the identity in the `grants` claim: `,<key>:<grant>` for each grant in
/// order, then the closing brace.
fn write_grants(grants: &[Grant]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for grant in grants {
        out.push(b',');
        json::write_str(&mut out, grant.key());
        out.push(b':');
        grant.write_json(&mut out);
    }
    out.push(b'}');
    out
}
