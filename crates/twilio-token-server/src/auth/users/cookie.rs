//! The signed session cookie: `<session id>.<HMAC-SHA256 of the id>`, both in base64url.
//!
//! The signature lets the server reject a forged or mangled cookie without a database query.
//! The session id alone is what authenticates, so the key only needs to be shared between
//! replicas, not kept from the database.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::config::{ConfigError, Environment};

/// The environment variable that contains the cookie key in base64, so several replicas can share
/// one key. Without it, the key is read from, or generated into, `cookie.key` in the data folder.
pub const COOKIE_KEY_ENV: &str = "TWILIO_TOKEN_COOKIE_KEY";

/// The file in the data folder that contains the generated cookie key.
pub const COOKIE_KEY_FILE: &str = "cookie.key";

/// The length of a cookie key in bytes.
const KEY_BYTES: usize = 32;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The key that signs session cookies. `Debug` shows `CookieKey(..)`, and the bytes are
/// zeroized on drop.
#[derive(Clone)]
pub struct CookieKey(Zeroizing<[u8; KEY_BYTES]>);

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

impl CookieKey {
    /// Generates a key from the operating system's random generator.
    pub fn generate() -> CookieKey {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        rand::rng().fill_bytes(key.as_mut());
        CookieKey(key)
    }

    /// Decodes a key from 32 bytes in base64, standard or URL-safe, with or without padding.
    /// Whitespace around the text is ignored.
    ///
    /// # Errors
    ///
    /// Returns a message saying what is wrong, without the key.
    pub fn from_base64(text: &str) -> Result<CookieKey, String> {
        let text = text.trim();
        let unpadded = text.trim_end_matches('=');
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(unpadded)
                .or_else(|_| STANDARD.decode(text))
                .map_err(|_| "the value is not base64".to_owned())?,
        );
        let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "the key is {} bytes but must be 32: generate one with `openssl rand -base64 32`",
                bytes.len()
            )
        })?;
        Ok(CookieKey(Zeroizing::new(key)))
    }

    /// Loads the key from [`COOKIE_KEY_ENV`] when it is set, otherwise from
    /// `data_dir/cookie.key`, which is created with a new key (mode 0600 on Unix) when missing.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] naming the variable or file when the key is not valid or the
    /// file cannot be read or written.
    pub fn load(environment: &Environment, data_dir: &Path) -> Result<CookieKey, ConfigError> {
        if let Some(text) = environment
            .get(COOKIE_KEY_ENV)
            .filter(|text| !text.is_empty())
        {
            return CookieKey::from_base64(text)
                .map_err(|message| ConfigError::new(COOKIE_KEY_ENV, message));
        }
        let path = data_dir.join(COOKIE_KEY_FILE);
        let file_error = |message: String| ConfigError::new(path.display().to_string(), message);
        match read_key_file(&path) {
            Ok(Some(text)) => CookieKey::from_base64(&text).map_err(file_error),
            Ok(None) => {
                let key = CookieKey::generate();
                write_key_file(&path, &key)
                    .map_err(|error| file_error(format!("failed to write a new key: {error}")))?;
                tracing::info!(path = %path.display(), "generated a new cookie key");
                Ok(key)
            }
            Err(error) => Err(file_error(format!("failed to read the key: {error}"))),
        }
    }

    /// Returns the key in standard base64, for [`COOKIE_KEY_ENV`] or the key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    /// Returns the cookie value for a session id: the id, a dot and its signature.
    pub fn sign(&self, session_id: &str) -> Zeroizing<String> {
        let signature = self.mac(session_id).finalize().into_bytes();
        Zeroizing::new(format!(
            "{session_id}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// Returns the session id of a cookie value whose signature is valid, comparing in
    /// constant time.
    pub fn verify<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (session_id, signature) = value.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(session_id).verify_slice(&signature).ok()?;
        Some(session_id)
    }

    fn mac(&self, session_id: &str) -> HmacSha256 {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts a 32-byte key"));
        mac.update(session_id.as_bytes());
        mac
    }
}

/// Returns the value of the first cookie named `name` in the request's `Cookie` headers.
pub fn find_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// The attributes of the session cookie.
#[derive(Debug, Clone, Copy)]
pub struct CookieAttributes<'a> {
    /// The cookie name.
    pub name: &'a str,
    /// `Max-Age` in seconds. A browser deletes the cookie on 0.
    pub max_age_secs: u64,
    /// Add `Secure`, because the browser reached the server over HTTPS.
    pub secure: bool,
}

/// Returns a `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Path=/`, `Max-Age`, and `Secure`
/// when asked for.
pub fn set_cookie_header(attributes: CookieAttributes<'_>, value: &str) -> Zeroizing<String> {
    let CookieAttributes {
        name,
        max_age_secs,
        secure,
    } = attributes;
    let secure = if secure { "; Secure" } else { "" };
    Zeroizing::new(format!(
        "{name}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}"
    ))
}

/// Checks a cookie name: one or more of the token characters of RFC 9110.
pub(crate) fn is_valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// Reads the key file, or returns `None` when it does not exist. Warns when other users may
/// read it.
fn read_key_file(path: &Path) -> std::io::Result<Option<Zeroizing<String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the cookie key file can be read by other users: run chmod 600 on it"
            );
        }
    }
    Ok(Some(text))
}

/// Writes a new key file with mode 0600 on Unix, failing if the file already exists.
fn write_key_file(path: &Path, key: &CookieKey) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let text = key.to_base64();
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const SESSION: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn signed_value_verifies() {
        let key = CookieKey::generate();
        let value = key.sign(SESSION);

        assert_eq!(key.verify(&value), Some(SESSION));
    }

    #[test]
    fn tampered_value_rejected() {
        let key = CookieKey::generate();
        let value = key.sign(SESSION);
        let other = CookieKey::generate();
        let changed_id = value.replacen('A', "B", 1);

        assert_eq!(other.verify(&value), None);
        assert_eq!(key.verify(&changed_id), None);
        assert_eq!(key.verify(SESSION), None);
        assert_eq!(key.verify(&format!("{SESSION}.")), None);
        assert_eq!(key.verify(&format!("{SESSION}.!!!")), None);
    }

    #[test]
    fn key_round_trips_through_base64() {
        let key = CookieKey::generate();
        let decoded = CookieKey::from_base64(&key.to_base64()).expect("decodes");

        assert_eq!(decoded.verify(&key.sign(SESSION)), Some(SESSION));
    }

    #[test]
    fn key_of_wrong_length_rejected() {
        let error = CookieKey::from_base64(&STANDARD.encode([0u8; 16])).expect_err("16 bytes");
        assert_eq!(
            error,
            "the key is 16 bytes but must be 32: generate one with `openssl rand -base64 32`"
        );
        let error = CookieKey::from_base64("not base64 at all!").expect_err("not base64");
        assert_eq!(error, "the value is not base64");
    }

    #[test]
    fn key_debug_hides_bytes() {
        assert_eq!(format!("{:?}", CookieKey::generate()), "CookieKey(..)");
    }

    #[test]
    fn key_file_created_then_reused() {
        let folder = std::env::temp_dir().join(format!(
            "twilio-token-cookie-{}-{}",
            std::process::id(),
            rand::rng().next_u64()
        ));
        std::fs::create_dir_all(&folder).expect("folder");
        let environment = Environment::new();

        let first = CookieKey::load(&environment, &folder).expect("generated");
        let second = CookieKey::load(&environment, &folder).expect("read back");

        assert_eq!(second.verify(&first.sign(SESSION)), Some(SESSION));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(folder.join(COOKIE_KEY_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn environment_key_wins_over_file() {
        let key = CookieKey::generate();
        let environment =
            Environment::from([(COOKIE_KEY_ENV.to_owned(), key.to_base64().to_string())]);
        let missing = Path::new("/nonexistent/twilio-token");

        let loaded = CookieKey::load(&environment, missing).expect("from the environment");

        assert_eq!(loaded.verify(&key.sign(SESSION)), Some(SESSION));
    }

    #[test]
    fn find_cookie_picks_named_pair() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; session=\"x.y\""));
        headers.append(COOKIE, HeaderValue::from_static("session=second"));

        assert_eq!(find_cookie(&headers, "session"), Some("x.y"));
        assert_eq!(find_cookie(&headers, "a"), Some("1"));
        assert_eq!(find_cookie(&headers, "missing"), None);
    }

    #[test]
    fn set_cookie_attributes() {
        let attributes = CookieAttributes {
            name: "s",
            max_age_secs: 60,
            secure: true,
        };
        assert_eq!(
            *set_cookie_header(attributes, "v"),
            "s=v; HttpOnly; SameSite=Lax; Path=/; Max-Age=60; Secure"
        );
        let attributes = CookieAttributes {
            secure: false,
            max_age_secs: 0,
            ..attributes
        };
        assert_eq!(
            *set_cookie_header(attributes, ""),
            "s=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"
        );
    }

    #[test]
    fn cookie_name_rule() {
        assert!(is_valid_cookie_name("twilio_token_session"));
        assert!(!is_valid_cookie_name(""));
        assert!(!is_valid_cookie_name("a b"));
        assert!(!is_valid_cookie_name("a=b"));
        assert!(!is_valid_cookie_name("a;b"));
    }
}
