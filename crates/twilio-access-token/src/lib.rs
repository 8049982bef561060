#![doc = include_str!("../README.md")]

mod clock;
mod decode;
mod diagnose;
mod error;
mod fields;
mod grants;
mod identity;
mod json;
mod jwt;
mod region;
mod secret;
mod sid;
mod token;
mod ttl;
mod verify;

pub use clock::{Clock, FixedClock, SystemClock};
pub use decode::{DecodeError, MAX_TOKEN_BYTES, Segment};
pub use diagnose::{
    DiagnoseContext, Diagnosis, Finding, Severity, VIDEO_SESSION_CAP_SECS, Verdict, diagnose,
};
pub use error::MintError;
pub use grants::{
    ChatGrant, Grant, GrantJsonError, IpMessagingGrant, PlaybackGrant, SyncGrant, TaskRouterGrant,
    VideoGrant, VoiceGrant,
};
pub use identity::{
    EndpointIdError, EndpointIdPart, IdentityError, MAX_IDENTITY_CHARS, endpoint_id,
    validate_identity,
};
pub use jwt::CONTENT_TYPE;
pub use region::{RegionError, validate_region};
pub use secret::ApiSecret;
pub use sid::{
    AccountSid, ApiKeySid, ApplicationSid, CredentialSid, DEFAULT_SYNC_SERVICE, RoleSid,
    ServiceSid, SidError, SidKind, SidProblem, WorkerSid, WorkspaceSid, validate_sid,
    validate_sync_service_sid,
};
pub use token::{AccessToken, AccessTokenBuilder, MAX_ISSUE_TIME};
pub use ttl::{Ttl, TtlError};
pub use verify::{
    Claims, DEFAULT_LEEWAY_SECS, MAX_LIFETIME_SECS, RevocationCheck, Verifier, VerifierBuilder,
    VerifierError, VerifyError,
};

/// Reading tokens without checking their signature.
///
/// Nothing here proves who made a token or that it was not changed. Use it to show a token to a
/// person or to diagnose one, never to decide what a caller may do.
pub mod dangerous {
    pub use crate::decode::UnverifiedToken;
    use crate::decode::{DecodeError, decode_parts};

    /// Splits a compact token and parses its header and claims **without verifying the
    /// signature**.
    ///
    /// # Errors
    ///
    /// Returns a [`DecodeError`] naming the part that is malformed: too long (over 16 KiB), not
    /// three parts, not base64url without padding, not UTF-8, not a JSON object, or an object
    /// with a repeated key.
    ///
    /// # Examples
    ///
    /// ```
    /// use twilio_access_token::dangerous::decode_unverified;
    ///
    /// let token = decode_unverified("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJBQyJ9.c2ln")?;
    /// assert_eq!(token.header["alg"], "HS256");
    /// # Ok::<(), twilio_access_token::DecodeError>(())
    /// ```
    pub fn decode_unverified(token: &str) -> Result<UnverifiedToken, DecodeError> {
        decode_parts(token)
    }
}
