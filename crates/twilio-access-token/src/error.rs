//! Errors from building and minting Access Tokens.

use std::fmt;

use crate::identity::IdentityError;
use crate::region::RegionError;
use crate::sid::SidError;
use crate::ttl::TtlError;

/// An error from building or minting an Access Token.
///
/// Each variant contains the values involved, and its message says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MintError {
    /// No account SID was given.
    MissingAccountSid,
    /// No API key SID was given.
    MissingApiKeySid,
    /// No API secret was given.
    MissingApiSecret,
    /// No identity was given. Every current client SDK needs one.
    MissingIdentity,
    /// The API secret is empty.
    EmptyApiSecret,
    /// The API secret starts or ends with whitespace. Twilio secrets never do, so this is
    /// usually a newline picked up from a file or a copy.
    ApiSecretWhitespace,
    /// A SID field is not a valid SID of its kind.
    InvalidSid {
        /// The field, named as in the token, such as `sub` or `chat.service_sid`.
        field: &'static str,
        /// The problem with the value.
        error: SidError,
    },
    /// The identity breaks a rule.
    InvalidIdentity(IdentityError),
    /// The lifetime is out of range.
    InvalidTtl(TtlError),
    /// The region is not a Twilio region id.
    InvalidRegion(RegionError),
    /// Voice outgoing parameters were given without an outgoing application SID, so the grant
    /// could not carry them.
    VoiceParamsWithoutApplication,
    /// An integer in a JSON grant field is outside JavaScript's safe range, so Twilio's
    /// JavaScript SDKs and twilio-node would round it.
    UnsafeInteger {
        /// The path to the number, such as `voice.outgoing.params.customer_id`.
        path: String,
        /// The number as written.
        value: String,
    },
    /// The issue time is after the year 5000, which usually means milliseconds were passed
    /// where seconds belong.
    IssueTimeOutOfRange {
        /// The issue time as given.
        issued_at: u64,
    },
    /// A timestamp is too large for a token: above 2^53 - 1, the largest integer JavaScript
    /// represents exactly.
    TimeOutOfRange {
        /// The claim, `nbf` or `exp`.
        claim: &'static str,
        /// The value, or `u64::MAX` when the sum overflowed.
        value: u64,
    },
    /// `nbf` is at or after `exp`, so the token would never be valid.
    NbfNotBeforeExpiry {
        /// The not-before time.
        nbf: u64,
        /// The expiry: the issue time plus the TTL.
        exp: u64,
    },
    /// The token would be longer than the 16 KiB verifiers accept, because of long grant
    /// values or escaped characters.
    TokenTooLarge {
        /// The token's largest possible length in bytes.
        bytes: usize,
    },
    /// The system clock is set before 1970.
    ClockBeforeEpoch,
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MintError::MissingAccountSid => f.write_str(
                "the account SID is missing: set it to your account's SID (AC…) from the Twilio \
                 Console",
            ),
            MintError::MissingApiKeySid => f.write_str(
                "the API key SID is missing: create an API key in the Twilio Console \
                 (Account > API keys) and use its SID (SK…)",
            ),
            MintError::MissingApiSecret => f.write_str(
                "the API secret is missing: use the secret shown once when the API key was \
                 created (not the account's Auth Token)",
            ),
            MintError::MissingIdentity => f.write_str(
                "the identity is missing: every Access Token needs the user's identity, and the \
                 client SDKs reject tokens without one",
            ),
            MintError::EmptyApiSecret => f.write_str(
                "the API secret is empty: use the secret shown once when the API key was created",
            ),
            MintError::ApiSecretWhitespace => f.write_str(
                "the API secret starts or ends with whitespace: Twilio secrets never do, so \
                 remove the space or newline (often left by a file or a copy)",
            ),
            // The SID error names the account or API key SID already.
            MintError::InvalidSid {
                field: "sub" | "iss",
                error,
            } => error.fmt(f),
            MintError::InvalidSid { field, error } => write!(f, "invalid {field}: {error}"),
            MintError::InvalidIdentity(error) => error.fmt(f),
            MintError::InvalidTtl(error) => error.fmt(f),
            MintError::InvalidRegion(error) => error.fmt(f),
            MintError::VoiceParamsWithoutApplication => f.write_str(
                "the Voice grant has outgoing parameters but no outgoing application SID: set \
                 the TwiML application SID (AP…) that receives them",
            ),
            MintError::UnsafeInteger { path, value } => write!(
                f,
                "the integer {value} at {path} is outside ±9007199254740991, so JavaScript would \
                 round it: pass it as a string"
            ),
            MintError::IssueTimeOutOfRange { issued_at } => write!(
                f,
                "the issue time {issued_at} is after the year 5000: pass Unix time in seconds, \
                 not milliseconds"
            ),
            MintError::TimeOutOfRange { claim, value } => write!(
                f,
                "the {claim} time {value} is too large for a token: Unix times in seconds must \
                 stay below 2^53"
            ),
            MintError::NbfNotBeforeExpiry { nbf, exp } => write!(
                f,
                "nbf {nbf} is not before exp {exp}, so the token would never be valid: move nbf \
                 earlier or use a longer TTL"
            ),
            MintError::TokenTooLarge { bytes } => write!(
                f,
                "the token would be up to {bytes} bytes long, over the 16384 bytes verifiers \
                 accept: shorten the grant values"
            ),
            MintError::ClockBeforeEpoch => f.write_str(
                "the system clock is set before 1970: fix the clock or pass the issue time \
                 explicitly",
            ),
        }
    }
}

impl std::error::Error for MintError {}

impl From<TtlError> for MintError {
    fn from(error: TtlError) -> Self {
        MintError::InvalidTtl(error)
    }
}

impl From<IdentityError> for MintError {
    fn from(error: IdentityError) -> Self {
        MintError::InvalidIdentity(error)
    }
}

impl From<RegionError> for MintError {
    fn from(error: RegionError) -> Self {
        MintError::InvalidRegion(error)
    }
}
