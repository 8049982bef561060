//! Compact JWS encoding with HS256.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::json;
use crate::secret::ApiSecret;

pub(crate) type HmacSha256 = hmac::Hmac<Sha256>;

/// The content type Twilio requires in the header: Access Token format version 1.
pub const CONTENT_TYPE: &str = "twilio-fpa;v=1";

/// The encoded header and an HMAC state keyed with the secret that has already absorbed
/// `<header>.`, so each token hashes only its payload.
#[derive(Clone)]
pub(crate) struct HeaderKey {
    /// `base64url(header) + "."`.
    prefix: String,
    mac: HmacSha256,
}

impl HeaderKey {
    pub(crate) fn new(secret: &ApiSecret, region: Option<&str>) -> Self {
        let mut header = Vec::with_capacity(64);
        header.extend_from_slice(br#"{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1""#);
        if let Some(region) = region {
            header.extend_from_slice(br#","twr":"#);
            json::write_str(&mut header, region);
        }
        header.push(b'}');

        let mut prefix = encode_segment(&header);
        prefix.push('.');
        let mut mac = new_hmac(secret.expose_secret());
        mac.update(prefix.as_bytes());
        HeaderKey { prefix, mac }
    }

    /// Returns the length of `base64url(header) + "."`.
    pub(crate) fn prefix_len(&self) -> usize {
        self.prefix.len()
    }

    /// Returns the compact token for `payload`: header, payload and signature, base64url-encoded
    /// without padding and joined by dots.
    pub(crate) fn sign(&self, payload: &[u8]) -> String {
        let payload_len = base64::encoded_len(payload.len(), false).unwrap_or(0);
        let mut token = String::with_capacity(self.prefix.len() + payload_len + 44);
        token.push_str(&self.prefix);
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);

        let mut mac = self.mac.clone();
        mac.update(&token.as_bytes()[self.prefix.len()..]);
        let signature = mac.finalize().into_bytes();

        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        token
    }
}

/// Returns an HMAC-SHA256 state keyed with `key`.
pub(crate) fn new_hmac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// Encodes bytes as base64url without padding.
pub(crate) fn encode_segment(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
