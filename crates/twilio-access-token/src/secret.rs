//! The API key secret.

use std::fmt;

use zeroize::Zeroizing;

/// The secret of a Twilio API key: the HMAC key that signs Access Tokens.
///
/// The bytes are never printed: `Debug` shows a placeholder, there is no `Display`, and the
/// memory is overwritten with zeros when the value is dropped. The secret is used exactly as
/// given, as its UTF-8 bytes, without trimming, like the official helper libraries do.
///
/// # Examples
///
/// ```
/// use twilio_access_token::ApiSecret;
///
/// let secret = ApiSecret::new("FAKEsecretDoNotUse0123456789abcd");
/// assert_eq!(format!("{secret:?}"), "ApiSecret(<redacted>)");
/// ```
#[derive(Clone)]
pub struct ApiSecret(Zeroizing<Vec<u8>>);

impl ApiSecret {
    /// Wraps a secret. The string's memory is taken over and zeroized on drop.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into().into_bytes()))
    }

    /// Returns the number of bytes in the secret.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns true when the secret has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Exposes the secret bytes, for HMAC keys and comparisons. The name keeps the risk visible
    /// at the call site.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiSecret(<redacted>)")
    }
}

impl From<String> for ApiSecret {
    fn from(secret: String) -> Self {
        Self::new(secret)
    }
}

impl From<&str> for ApiSecret {
    fn from(secret: &str) -> Self {
        Self::new(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secret() {
        let secret = ApiSecret::new("hunter2-very-secret");
        let printed = format!("{secret:?} {secret:#?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn secret_bytes_kept_verbatim() {
        let secret = ApiSecret::new(" padded\n");
        assert_eq!(secret.expose_secret(), b" padded\n");
        assert_eq!(secret.len(), 8);
    }
}
