//! Strict verification of Access Tokens.

use std::fmt;
use std::sync::Arc;

use hmac::Mac;
use serde_json::{Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::decode::{self, DecodeError, Segment};
use crate::fields::{self, ClaimFields};
use crate::grants::{Grant, GrantJsonError};
use crate::jwt::{CONTENT_TYPE, HmacSha256, new_hmac};
use crate::secret::ApiSecret;
use crate::sid::{SidError, SidKind, validate_sid};
use crate::token::MAX_ISSUE_TIME;

/// The default clock leeway: 60 seconds, applied to `exp` and `nbf`.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// The maximum lifetime Twilio accepts: `exp` at most 24 hours after `nbf` (or `iat`).
pub const MAX_LIFETIME_SECS: u64 = 86_400;

/// The claims of a verified token.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Claims {
    /// `grants.identity`.
    pub identity: String,
    /// The known grants, typed, in token order.
    pub grants: Vec<Grant>,
    /// Grants this library does not know (such as the retired `rtc`), as raw JSON.
    pub unknown_grants: Map<String, Value>,
    /// `iss`, the API key SID whose secret verified the signature.
    pub api_key_sid: String,
    /// `sub`, the account SID.
    pub account_sid: String,
    /// `jti`, when present.
    pub jti: Option<String>,
    /// `iat` in Unix seconds, when present.
    pub issued_at: Option<u64>,
    /// `nbf` in Unix seconds, when present.
    pub not_before: Option<u64>,
    /// `exp` in Unix seconds.
    pub expires_at: u64,
    /// The `twr` header, when present.
    pub region: Option<String>,
}

/// An error from verifying a token.
///
/// [`VerifyError::twilio_code`] returns the error code Twilio would report for the same token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is not a well-formed compact JWT with JSON header and payload.
    Malformed(DecodeError),
    /// The header's `alg` is not `HS256` (this includes `none`).
    UnsupportedAlgorithm {
        /// The `alg` value as JSON text, or `None` when missing.
        alg: Option<String>,
    },
    /// The header's `typ` is not `JWT`.
    WrongType {
        /// The `typ` value as JSON text, or `None` when missing.
        typ: Option<String>,
    },
    /// The header's `cty` is not `twilio-fpa;v=1`.
    WrongContentType {
        /// The `cty` value as JSON text, or `None` when missing.
        cty: Option<String>,
    },
    /// The header has a `crit` member, which asks the verifier to understand extensions that
    /// Access Tokens do not have.
    UnsupportedCritical {
        /// The `crit` value as JSON text.
        crit: String,
    },
    /// The header's `twr` region is not a string.
    InvalidRegion,
    /// The payload has no `iss` string.
    MissingIssuer,
    /// The `iss` is not one of the verifier's API keys.
    UnknownApiKey {
        /// The `iss` value.
        iss: String,
    },
    /// The signature does not match the API key's secret.
    BadSignature {
        /// The API key SID whose secret was used.
        api_key_sid: String,
    },
    /// The `sub` is missing or not the expected account SID.
    WrongAccount {
        /// The account SID the verifier expects.
        expected: String,
        /// The `sub` value as JSON text, or `None` when missing.
        found: Option<String>,
    },
    /// The payload has no `exp`.
    MissingExpiry,
    /// A time claim is not an integer from 0 to 100,000,086,400 (the year 5138), so it is
    /// negative, fractional, not a number, or probably in milliseconds.
    InvalidTime {
        /// The claim: `exp`, `nbf` or `iat`.
        claim: &'static str,
        /// The value as JSON text.
        value: String,
    },
    /// The token expired more than the leeway ago.
    Expired {
        /// `exp`.
        exp: u64,
        /// The verification time.
        now: u64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// The token's `nbf` is further in the future than the leeway.
    NotYetValid {
        /// `nbf`.
        nbf: u64,
        /// The verification time.
        now: u64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// `exp` is further than the maximum lifetime after `nbf` (or `iat`).
    LifetimeTooLong {
        /// `exp - start` in seconds.
        lifetime: u64,
        /// The claim the lifetime counts from: `nbf`, `iat`, or `now` when the token has neither.
        from: &'static str,
        /// The maximum in seconds.
        max: u64,
    },
    /// `grants` is missing or not an object.
    GrantsNotObject,
    /// `grants.identity` is missing.
    MissingIdentity,
    /// `grants.identity` is not a string.
    IdentityNotString {
        /// The value as JSON text.
        value: String,
    },
    /// A known grant has the wrong form.
    InvalidGrant(GrantJsonError),
    /// The verifier's clock is set before 1970, so expiry cannot be checked.
    ClockBeforeEpoch,
    /// The token was revoked by the verifier's revocation hook.
    Revoked {
        /// The hook's reason.
        reason: String,
    },
}

impl VerifyError {
    /// Returns a stable snake_case name of the variant, such as `expired`, for machine-readable
    /// output.
    pub fn kind(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed",
            VerifyError::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            VerifyError::WrongType { .. } => "wrong_type",
            VerifyError::WrongContentType { .. } => "wrong_content_type",
            VerifyError::UnsupportedCritical { .. } => "unsupported_critical",
            VerifyError::InvalidRegion => "invalid_region",
            VerifyError::MissingIssuer => "missing_issuer",
            VerifyError::UnknownApiKey { .. } => "unknown_api_key",
            VerifyError::BadSignature { .. } => "bad_signature",
            VerifyError::WrongAccount { .. } => "wrong_account",
            VerifyError::MissingExpiry => "missing_expiry",
            VerifyError::InvalidTime { .. } => "invalid_time",
            VerifyError::Expired { .. } => "expired",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::LifetimeTooLong { .. } => "lifetime_too_long",
            VerifyError::GrantsNotObject => "grants_not_object",
            VerifyError::MissingIdentity => "missing_identity",
            VerifyError::IdentityNotString { .. } => "identity_not_string",
            VerifyError::InvalidGrant(_) => "invalid_grant",
            VerifyError::Revoked { .. } => "revoked",
            VerifyError::ClockBeforeEpoch => "clock_before_epoch",
        }
    }

    /// Returns the Twilio error code the service reports for this kind of problem: 20101
    /// (invalid token), 20102 (header), 20103 (issuer or subject), 20104 (expired), 20105 (not
    /// yet valid), 20106 (grants), 20107 (signature) or 20157 (lifetime over 24 hours).
    pub fn twilio_code(&self) -> u32 {
        match self {
            VerifyError::Malformed(DecodeError::InvalidUtf8 {
                segment: Segment::Header,
            })
            | VerifyError::Malformed(DecodeError::InvalidJson {
                segment: Segment::Header,
                ..
            })
            | VerifyError::Malformed(DecodeError::NotAnObject {
                segment: Segment::Header,
            })
            | VerifyError::Malformed(DecodeError::DuplicateKey {
                segment: Segment::Header,
                ..
            }) => 20102,
            VerifyError::Malformed(_)
            | VerifyError::Revoked { .. }
            | VerifyError::ClockBeforeEpoch => 20101,
            VerifyError::UnsupportedAlgorithm { .. }
            | VerifyError::WrongType { .. }
            | VerifyError::WrongContentType { .. }
            | VerifyError::UnsupportedCritical { .. }
            | VerifyError::InvalidRegion => 20102,
            VerifyError::MissingIssuer
            | VerifyError::UnknownApiKey { .. }
            | VerifyError::WrongAccount { .. } => 20103,
            VerifyError::MissingExpiry | VerifyError::Expired { .. } => 20104,
            VerifyError::InvalidTime { claim: "nbf", .. } | VerifyError::NotYetValid { .. } => {
                20105
            }
            VerifyError::InvalidTime { claim: "exp", .. } => 20104,
            VerifyError::InvalidTime { .. } => 20101,
            VerifyError::BadSignature { .. } => 20107,
            VerifyError::LifetimeTooLong { lifetime, .. } if *lifetime > MAX_LIFETIME_SECS => 20157,
            VerifyError::LifetimeTooLong { .. } => 20101,
            VerifyError::GrantsNotObject
            | VerifyError::MissingIdentity
            | VerifyError::IdentityNotString { .. }
            | VerifyError::InvalidGrant(_) => 20106,
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "missing".into());
        match self {
            VerifyError::Malformed(error) => error.fmt(f),
            VerifyError::UnsupportedAlgorithm { alg } => write!(
                f,
                "the header's alg is {}: Twilio accepts only \"HS256\", so sign with HMAC-SHA256",
                shown(alg)
            ),
            VerifyError::WrongType { typ } => {
                write!(f, "the header's typ is {}: expected \"JWT\"", shown(typ))
            }
            VerifyError::WrongContentType { cty } => write!(
                f,
                "the header's cty is {}: Access Tokens have \"{CONTENT_TYPE}\"",
                shown(cty)
            ),
            VerifyError::UnsupportedCritical { crit } => write!(
                f,
                "the header's crit {crit} names extensions that must be understood, and Access \
                 Tokens have none: mint the token without a crit header"
            ),
            VerifyError::InvalidRegion => {
                f.write_str("the header's twr (region) is not a string such as \"us1\"")
            }
            VerifyError::MissingIssuer => f.write_str(
                "the token has no iss: it must be the SID of the API key that signed it",
            ),
            VerifyError::UnknownApiKey { iss } if iss.starts_with("AC") => write!(
                f,
                "the token's iss {iss:?} is an account SID: it was signed with the Auth Token or \
                 has iss and sub swapped, but Access Tokens are issued by an API key (SK…)"
            ),
            VerifyError::UnknownApiKey { iss } => write!(
                f,
                "the token was issued by {iss:?}, which is not one of the configured API keys: \
                 add that key's SID and secret, or mint with a configured key"
            ),
            VerifyError::BadSignature { api_key_sid } => write!(
                f,
                "the signature does not match the secret of API key {api_key_sid}: the token was \
                 signed with another secret (an old key, another account, or the Auth Token) or \
                 was changed"
            ),
            VerifyError::WrongAccount { expected, found } => write!(
                f,
                "the token's sub is {}, but the expected account SID is {expected}: mint with \
                 this account's SID",
                shown(found)
            ),
            VerifyError::MissingExpiry => {
                f.write_str("the token has no exp: Twilio requires an expiry time")
            }
            VerifyError::InvalidTime { claim, value }
                if value
                    .parse::<u64>()
                    .is_ok_and(|time| time > MAX_ISSUE_TIME && time / 1000 <= MAX_TIME_CLAIM) =>
            {
                write!(
                    f,
                    "the {claim} claim {value} looks like milliseconds: Unix times in tokens are \
                     in seconds"
                )
            }
            VerifyError::InvalidTime { claim, value } => write!(
                f,
                "the {claim} claim {value} is not a Unix time in whole seconds: use an integer \
                 number of seconds since 1970"
            ),
            VerifyError::Expired { exp, now, leeway } => write!(
                f,
                "the token expired {} ago (exp {exp}, now {now}, leeway {leeway}s): mint a new one",
                format_duration(now.saturating_sub(*exp))
            ),
            VerifyError::NotYetValid { nbf, now, leeway } => write!(
                f,
                "the token is not valid for another {} (nbf {nbf}, now {now}, leeway {leeway}s): \
                 check the clocks of the minting server and this machine",
                format_duration(nbf.saturating_sub(*now))
            ),
            VerifyError::LifetimeTooLong {
                lifetime,
                from,
                max,
            } if *max == MAX_LIFETIME_SECS => {
                write!(
                    f,
                    "the token lives {} from {from} to exp: Twilio rejects tokens that live \
                     longer than 24 hours",
                    format_duration(*lifetime)
                )
            }
            VerifyError::LifetimeTooLong {
                lifetime,
                from,
                max,
            } => write!(
                f,
                "the token lives {} from {from} to exp, over the configured maximum of {}",
                format_duration(*lifetime),
                format_duration(*max)
            ),
            VerifyError::GrantsNotObject => {
                f.write_str("the token's grants claim is missing or not a JSON object")
            }
            VerifyError::MissingIdentity => {
                f.write_str("the token has no grants.identity: every client SDK needs one")
            }
            VerifyError::IdentityNotString { value } => {
                write!(f, "the token's grants.identity is {value}, not a string")
            }
            VerifyError::InvalidGrant(error) => write!(f, "invalid grant: {error}"),
            VerifyError::Revoked { reason } => write!(f, "the token was revoked: {reason}"),
            VerifyError::ClockBeforeEpoch => f.write_str(
                "the system clock is set before 1970, so expiry cannot be checked: fix the clock",
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

impl From<DecodeError> for VerifyError {
    fn from(error: DecodeError) -> Self {
        VerifyError::Malformed(error)
    }
}

/// Formats seconds as `1h 2m 3s`, leaving out zero units.
pub(crate) fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let units = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let parts: Vec<String> = units
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, unit)| format!("{count}{unit}"))
        .collect();
    parts.join(" ")
}

/// A decision on a token whose signature and claims are valid, for deny lists kept by the caller.
pub trait RevocationCheck: Send + Sync {
    /// Returns a reason when the token must be rejected.
    fn check(&self, claims: &Claims) -> Option<String>;
}

/// An API key: its SID and an HMAC state keyed with its secret.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) sid: String,
    pub(crate) mac: HmacSha256,
    /// The keyed state after `<header>.` for each of the usual headers, so the header need
    /// not be hashed again for each token.
    pub(crate) header_macs: [HmacSha256; 3],
}

/// An error from building a [`Verifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifierError {
    /// No API key was added.
    NoKeys,
    /// No account SID was given.
    MissingAccountSid,
    /// A SID is malformed.
    InvalidSid(SidError),
    /// The same API key SID was added twice.
    DuplicateKey {
        /// The SID.
        sid: String,
    },
    /// An API secret is empty.
    EmptySecret {
        /// The key's SID.
        sid: String,
    },
}

impl fmt::Display for VerifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifierError::NoKeys => f.write_str(
                "no API key was given: add the SID (SK…) and secret of each key that may sign \
                 tokens",
            ),
            VerifierError::MissingAccountSid => f.write_str(
                "the account SID is missing: give the account SID (AC…) that tokens must name in \
                 sub",
            ),
            VerifierError::InvalidSid(error) => error.fmt(f),
            VerifierError::DuplicateKey { sid } => {
                write!(f, "the API key {sid} was added twice: give each key once")
            }
            VerifierError::EmptySecret { sid } => write!(
                f,
                "the API secret of {sid} is empty: give the secret shown when the key was created"
            ),
        }
    }
}

impl std::error::Error for VerifierError {}

/// Verifies Access Tokens against a set of API keys and one account.
///
/// Checks run in this order, and the first failure is returned:
///
/// 1. size at most 16 KiB, before any decoding;
/// 2. three dot-separated parts, each strict base64url without padding;
/// 3. header: a JSON object without repeated keys, `alg` exactly `HS256` (so `none`, HS384,
///    HS512 and every asymmetric algorithm are rejected before any signature work), `typ`
///    `JWT`, `cty` `twilio-fpa;v=1`, no `crit` (RFC 7515 requires rejecting critical
///    extensions the verifier does not understand, and it understands none), and `twr`, if
///    present, a string;
/// 4. payload: a JSON object without repeated keys whose `iss` names a key of the set (the
///    `grants` value is only checked for syntax here);
/// 5. signature: HMAC-SHA256 with that key's secret, compared in constant time;
/// 6. `sub` is the expected account SID;
/// 7. `exp` is present, an integer, and `now <= exp + leeway`;
/// 8. `nbf`, if present, is an integer and `nbf <= now + leeway`; `iat`, if present, is an
///    integer;
/// 9. the lifetime `exp - (nbf or iat)` is at most the maximum (24 hours);
/// 10. `grants` is an object without repeated keys, `grants.identity` a string, and each known
///     grant well-formed;
/// 11. the revocation hook, if any.
///
/// # Examples
///
/// ```
/// use twilio_access_token::{AccessToken, ApiSecret, FixedClock, Verifier};
///
/// let secret = "FAKEsecretDoNotUse0123456789abcd";
/// let jwt = AccessToken::builder()
///     .account_sid("AC0123456789abcdef0123456789abcdef")
///     .api_key_sid("SKfedcba9876543210fedcba9876543210")
///     .api_secret(secret)
///     .identity("alice")
///     .build()?
///     .to_jwt_at(1_700_000_000)?;
///
/// let verifier = Verifier::builder("AC0123456789abcdef0123456789abcdef")
///     .key("SKfedcba9876543210fedcba9876543210", ApiSecret::new(secret))
///     .clock(FixedClock(1_700_000_100))
///     .build()?;
/// let claims = verifier.verify(&jwt)?;
/// assert_eq!(claims.identity, "alice");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Verifier {
    account_sid: String,
    keys: Vec<VerifyingKey>,
    leeway: u64,
    max_lifetime: u64,
    clock: Arc<dyn Clock + Send + Sync>,
    revocation: Option<Arc<dyn RevocationCheck>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sids: Vec<&str> = self.keys.iter().map(|key| key.sid.as_str()).collect();
        f.debug_struct("Verifier")
            .field("account_sid", &self.account_sid)
            .field("api_keys", &sids)
            .field("leeway", &self.leeway)
            .field("max_lifetime", &self.max_lifetime)
            .finish_non_exhaustive()
    }
}

/// Builder for [`Verifier`].
#[must_use]
pub struct VerifierBuilder {
    account_sid: String,
    keys: Vec<(String, ApiSecret)>,
    leeway: u64,
    max_lifetime: u64,
    clock: Arc<dyn Clock + Send + Sync>,
    revocation: Option<Arc<dyn RevocationCheck>>,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sids: Vec<&str> = self.keys.iter().map(|(sid, _)| sid.as_str()).collect();
        f.debug_struct("VerifierBuilder")
            .field("account_sid", &self.account_sid)
            .field("api_keys", &sids)
            .field("leeway", &self.leeway)
            .field("max_lifetime", &self.max_lifetime)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// Adds an API key that may have signed tokens. The token's `iss` picks the key.
    pub fn key(mut self, api_key_sid: impl Into<String>, secret: impl Into<ApiSecret>) -> Self {
        self.keys.push((api_key_sid.into(), secret.into()));
        self
    }

    /// Sets the clock leeway in seconds, applied to `exp` and `nbf`. The default is 60.
    pub fn leeway_secs(mut self, leeway: u64) -> Self {
        self.leeway = leeway;
        self
    }

    /// Sets the maximum lifetime in seconds. The default, 86400, is Twilio's limit.
    pub fn max_lifetime_secs(mut self, max: u64) -> Self {
        self.max_lifetime = max;
        self
    }

    /// Sets the clock [`Verifier::verify`] reads. The default is the system clock.
    pub fn clock(mut self, clock: impl Clock + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets a hook that may reject tokens whose signature and claims are valid, for example
    /// by `jti` or identity on a deny list.
    pub fn revocation_check(mut self, check: impl RevocationCheck + 'static) -> Self {
        self.revocation = Some(Arc::new(check));
        self
    }

    /// Checks the SIDs and builds the verifier.
    ///
    /// # Errors
    ///
    /// Returns a [`VerifierError`] when there is no key, a SID is malformed, a key SID repeats,
    /// or a secret is empty.
    pub fn build(self) -> Result<Verifier, VerifierError> {
        if self.account_sid.is_empty() {
            return Err(VerifierError::MissingAccountSid);
        }
        validate_sid(SidKind::Account, &self.account_sid).map_err(VerifierError::InvalidSid)?;
        if self.keys.is_empty() {
            return Err(VerifierError::NoKeys);
        }
        let mut keys: Vec<VerifyingKey> = Vec::with_capacity(self.keys.len());
        for (sid, secret) in &self.keys {
            validate_sid(SidKind::ApiKey, sid).map_err(VerifierError::InvalidSid)?;
            if keys.iter().any(|key| key.sid == *sid) {
                return Err(VerifierError::DuplicateKey { sid: sid.clone() });
            }
            if secret.is_empty() {
                return Err(VerifierError::EmptySecret { sid: sid.clone() });
            }
            let mac = new_hmac(secret.expose_secret());
            let header_macs = fields::KNOWN_HEADERS.map(|header| {
                let mut prefixed = mac.clone();
                prefixed.update(header.as_bytes());
                prefixed.update(b".");
                prefixed
            });
            keys.push(VerifyingKey {
                sid: sid.clone(),
                mac,
                header_macs,
            });
        }
        Ok(Verifier {
            account_sid: self.account_sid,
            keys,
            leeway: self.leeway,
            max_lifetime: self.max_lifetime,
            clock: self.clock,
            revocation: self.revocation,
        })
    }
}

impl Verifier {
    /// Starts a builder for tokens of one account, with a 60-second leeway, a 24-hour maximum
    /// lifetime and the system clock.
    pub fn builder(account_sid: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            account_sid: account_sid.into(),
            keys: Vec::new(),
            leeway: DEFAULT_LEEWAY_SECS,
            max_lifetime: MAX_LIFETIME_SECS,
            clock: Arc::new(SystemClock),
            revocation: None,
        }
    }

    /// Verifies a token at the time the verifier's clock returns.
    ///
    /// # Errors
    ///
    /// Returns [`VerifyError::ClockBeforeEpoch`] when the clock has no Unix time, and the errors
    /// of [`Verifier::verify_at`].
    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let now = self.clock.now().ok_or(VerifyError::ClockBeforeEpoch)?;
        self.verify_at(token, now)
    }

    /// Verifies a token as of `now`, in Unix seconds.
    ///
    /// # Errors
    ///
    /// Returns the [`VerifyError`] of the first failed check, in the order listed on
    /// [`Verifier`].
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Claims, VerifyError> {
        let mut buffer = [0u8; 1536];
        let fields = fields::parse_token(token, &mut buffer)?;
        let region = match &fields.header {
            Some(header) => check_header_values(
                header.alg.as_ref(),
                header.typ.as_ref(),
                header.cty.as_ref(),
                header.crit.as_ref(),
                header.twr.as_ref(),
            )?,
            None => None,
        };

        let Some(Value::String(iss)) = &fields.claims.iss else {
            return Err(VerifyError::MissingIssuer);
        };
        let key = self
            .keys
            .iter()
            .find(|key| key.sid == *iss)
            .ok_or_else(|| VerifyError::UnknownApiKey { iss: iss.clone() })?;
        let signing_input = &token.as_bytes()[..fields.signing_input_len];
        let signature = &fields.signature[..fields.signature_len];
        let (mac, signed_rest) = match fields.known_header {
            Some(index) => {
                let prefix_len = fields::KNOWN_HEADERS[index].len() + 1;
                (&key.header_macs[index], &signing_input[prefix_len..])
            }
            None => (&key.mac, signing_input),
        };
        if !signature_matches(mac, signed_rest, signature) {
            return Err(VerifyError::BadSignature {
                api_key_sid: key.sid.clone(),
            });
        }

        let verified = self.check_claims(fields.claims, &fields.payload, region, now)?;
        if let Some(reason) = self
            .revocation
            .as_ref()
            .and_then(|hook| hook.check(&verified))
        {
            return Err(VerifyError::Revoked { reason });
        }
        Ok(verified)
    }

    /// Returns the configured leeway in seconds.
    pub fn leeway_secs(&self) -> u64 {
        self.leeway
    }

    /// Returns the expected account SID.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// Returns the SIDs of the configured API keys.
    pub fn api_key_sids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| key.sid.as_str())
    }

    fn check_claims(
        &self,
        claims: ClaimFields,
        payload: &str,
        region: Option<String>,
        now: u64,
    ) -> Result<Claims, VerifyError> {
        let account_sid = match claims.sub {
            Some(Value::String(sub)) if sub == self.account_sid => sub,
            other => {
                return Err(VerifyError::WrongAccount {
                    expected: self.account_sid.clone(),
                    found: other.as_ref().map(Value::to_string),
                });
            }
        };

        let expires_at =
            time_value(claims.exp.as_ref(), "exp")?.ok_or(VerifyError::MissingExpiry)?;
        if now > expires_at.saturating_add(self.leeway) {
            return Err(VerifyError::Expired {
                exp: expires_at,
                now,
                leeway: self.leeway,
            });
        }
        let not_before = time_value(claims.nbf.as_ref(), "nbf")?;
        if let Some(nbf) = not_before.filter(|nbf| *nbf > now.saturating_add(self.leeway)) {
            return Err(VerifyError::NotYetValid {
                nbf,
                now,
                leeway: self.leeway,
            });
        }
        let issued_at = time_value(claims.iat.as_ref(), "iat")?;
        let (start, from) = match (not_before, issued_at) {
            (Some(nbf), _) => (nbf, "nbf"),
            (None, Some(iat)) => (iat, "iat"),
            (None, None) => (now, "now"),
        };
        let lifetime = expires_at.saturating_sub(start);
        if lifetime > self.max_lifetime {
            return Err(VerifyError::LifetimeTooLong {
                lifetime,
                from,
                max: self.max_lifetime,
            });
        }

        let Some(range) = claims.grants.clone() else {
            return Err(VerifyError::GrantsNotObject);
        };
        let grants_text = &payload[range];
        let (identity, known, unknown_grants) = match fields::fast_grants(grants_text) {
            Some((identity, known)) => (identity, known, Map::new()),
            None => read_grants(grants_text)?,
        };

        let jti = match claims.jti {
            Some(Value::String(jti)) => Some(jti),
            _ => None,
        };
        let api_key_sid = match claims.iss {
            Some(Value::String(iss)) => iss,
            _ => String::new(),
        };
        Ok(Claims {
            identity,
            grants: known,
            unknown_grants,
            api_key_sid,
            account_sid,
            jti,
            issued_at,
            not_before,
            expires_at,
            region,
        })
    }
}

/// The identity, the known grants and the unknown grants of a grants object.
type ReadGrants = (String, Vec<Grant>, Map<String, Value>);

/// Parses and checks a grants object on the general path, with the exact error for each
/// problem: repeated keys, a non-object, a missing or non-string identity, malformed grants.
fn read_grants(text: &str) -> Result<ReadGrants, VerifyError> {
    let Value::Object(mut grants) = decode::parse_value(text, Segment::Payload)? else {
        return Err(VerifyError::GrantsNotObject);
    };
    let identity = match grants.shift_remove("identity") {
        Some(Value::String(identity)) => identity,
        Some(other) => {
            return Err(VerifyError::IdentityNotString {
                value: other.to_string(),
            });
        }
        None => return Err(VerifyError::MissingIdentity),
    };
    let mut known = Vec::new();
    let mut unknown_grants = Map::new();
    for (key, value) in grants {
        match Grant::from_json(&key, &value) {
            Ok(grant) => known.push(grant),
            Err(GrantJsonError::UnknownGrant { .. }) => {
                unknown_grants.insert(key, value);
            }
            Err(error) => return Err(VerifyError::InvalidGrant(error)),
        }
    }
    Ok((identity, known, unknown_grants))
}

/// Checks `alg`, `typ`, `cty`, `crit` and `twr` and returns the region.
pub(crate) fn check_header(header: &Map<String, Value>) -> Result<Option<String>, VerifyError> {
    check_header_values(
        header.get("alg"),
        header.get("typ"),
        header.get("cty"),
        header.get("crit"),
        header.get("twr"),
    )
}

fn check_header_values(
    alg: Option<&Value>,
    typ: Option<&Value>,
    cty: Option<&Value>,
    crit: Option<&Value>,
    twr: Option<&Value>,
) -> Result<Option<String>, VerifyError> {
    let text = |value: Option<&Value>| value.map(Value::to_string);
    if alg.and_then(Value::as_str) != Some("HS256") {
        return Err(VerifyError::UnsupportedAlgorithm { alg: text(alg) });
    }
    if typ.and_then(Value::as_str) != Some("JWT") {
        return Err(VerifyError::WrongType { typ: text(typ) });
    }
    if cty.and_then(Value::as_str) != Some(CONTENT_TYPE) {
        return Err(VerifyError::WrongContentType { cty: text(cty) });
    }
    if let Some(crit) = crit {
        return Err(VerifyError::UnsupportedCritical {
            crit: crit.to_string(),
        });
    }
    match twr {
        None => Ok(None),
        Some(Value::String(region)) => Ok(Some(region.clone())),
        Some(_) => Err(VerifyError::InvalidRegion),
    }
}

/// Compares the HMAC of `signing_input` with `signature` in constant time.
pub(crate) fn signature_matches(mac: &HmacSha256, signing_input: &[u8], signature: &[u8]) -> bool {
    let mut mac = mac.clone();
    mac.update(signing_input);
    mac.verify_slice(signature).is_ok()
}

/// The largest time claim accepted: the latest issue time plus the maximum lifetime. Larger
/// values are almost always milliseconds.
pub(crate) const MAX_TIME_CLAIM: u64 = MAX_ISSUE_TIME + MAX_LIFETIME_SECS;

/// Reads a time claim: absent, or an integer from 0 to [`MAX_TIME_CLAIM`].
pub(crate) fn time_value(
    value: Option<&Value>,
    claim: &'static str,
) -> Result<Option<u64>, VerifyError> {
    match value {
        None => Ok(None),
        Some(value) => match value.as_u64() {
            Some(time) if time <= MAX_TIME_CLAIM => Ok(Some(time)),
            _ => Err(VerifyError::InvalidTime {
                claim,
                value: value.to_string(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kind_names_variants() {
        let expired = VerifyError::Expired {
            exp: 1,
            now: 100,
            leeway: 60,
        };
        assert_eq!(expired.kind(), "expired");
        let signature = VerifyError::BadSignature {
            api_key_sid: "SK".into(),
        };
        assert_eq!(signature.kind(), "bad_signature");
        assert_eq!(VerifyError::MissingIdentity.kind(), "missing_identity");
    }

    #[test]
    fn duration_units_left_out_when_zero() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(3661), "1h 1m 1s");
        assert_eq!(format_duration(86_400 + 60), "1d 1m");
    }
}
