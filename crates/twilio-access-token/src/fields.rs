//! The verifier's parsing path: the same checks as [`decode_parts`](crate::decode), but the
//! header and the claims are read into fixed fields instead of maps, which halves the cost of
//! verification.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::decode::{
    DUPLICATE_KEY_PREFIX, DecodeError, MAX_TOKEN_BYTES, Segment, StrictValue, base64_error,
    json_error,
};

/// The header members Twilio defines, each as given.
#[derive(Debug, Default)]
pub(crate) struct HeaderFields {
    pub(crate) alg: Option<Value>,
    pub(crate) typ: Option<Value>,
    pub(crate) cty: Option<Value>,
    pub(crate) twr: Option<Value>,
}

/// The claims the verifier reads, each as given.
#[derive(Debug, Default)]
pub(crate) struct ClaimFields {
    pub(crate) iss: Option<Value>,
    pub(crate) sub: Option<Value>,
    pub(crate) jti: Option<Value>,
    pub(crate) exp: Option<Value>,
    pub(crate) nbf: Option<Value>,
    pub(crate) iat: Option<Value>,
    pub(crate) grants: Option<Value>,
}

/// A token split and parsed for verification.
#[derive(Debug)]
pub(crate) struct TokenFields {
    pub(crate) header: HeaderFields,
    pub(crate) claims: ClaimFields,
    pub(crate) signature: [u8; 32],
    /// The number of signature bytes decoded; anything but 32 cannot match HMAC-SHA256.
    pub(crate) signature_len: usize,
    pub(crate) signing_input_len: usize,
}

/// Splits and parses a token, reporting the same errors in the same order as
/// `decode_parts`: size, parts, base64 of each part, header JSON, payload JSON.
pub(crate) fn parse_token(token: &str) -> Result<TokenFields, DecodeError> {
    if token.is_empty() {
        return Err(DecodeError::Empty);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(DecodeError::TooLarge { len: token.len() });
    }
    let mut parts = token.splitn(4, '.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DecodeError::SegmentCount {
            found: token.split('.').count(),
        });
    };
    let payload_offset = header.len() + 1;
    let signature_offset = payload_offset + payload.len() + 1;

    // Most tokens carry one of a few header spellings, which need no decoding.
    let known = KNOWN_HEADERS.contains(&header);
    let header_bytes = if known {
        Vec::new()
    } else {
        decode(header, Segment::Header, 0)?
    };
    let payload_bytes = decode(payload, Segment::Payload, payload_offset)?;
    let mut signature_bytes = [0u8; 32];
    let signature_len = if signature.len() == 43 {
        URL_SAFE_NO_PAD
            .decode_slice(signature, &mut signature_bytes)
            .map_err(|_| base64_error(signature, Segment::Signature, signature_offset))?
    } else {
        // Not the length of an HMAC-SHA256 signature: still report malformed base64 first.
        decode(signature, Segment::Signature, signature_offset)?;
        0
    };

    let header = if known {
        twilio_header()
    } else {
        parse_header(&header_bytes)?
    };
    let claims = parse_claims(&payload_bytes)?;
    Ok(TokenFields {
        header,
        claims,
        signature: signature_bytes,
        signature_len,
        signing_input_len: signature_offset - 1,
    })
}

/// The base64url encodings of the headers the official libraries write without a region:
/// twilio-node's order, PyJWT's sorted order, and the order of PHP and Twilio's documentation.
const KNOWN_HEADERS: [&str; 3] = [
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImN0eSI6InR3aWxpby1mcGE7dj0xIn0",
    "eyJhbGciOiJIUzI1NiIsImN0eSI6InR3aWxpby1mcGE7dj0xIiwidHlwIjoiSldUIn0",
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiIsImN0eSI6InR3aWxpby1mcGE7dj0xIn0",
];

/// The fields of every header in [`KNOWN_HEADERS`].
fn twilio_header() -> HeaderFields {
    HeaderFields {
        alg: Some(Value::String("HS256".into())),
        typ: Some(Value::String("JWT".into())),
        cty: Some(Value::String(crate::jwt::CONTENT_TYPE.into())),
        twr: None,
    }
}

fn decode(text: &str, segment: Segment, offset: usize) -> Result<Vec<u8>, DecodeError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| base64_error(text, segment, offset))
}

fn parse_header(bytes: &[u8]) -> Result<HeaderFields, DecodeError> {
    let mut fields = HeaderFields::default();
    parse_object(bytes, Segment::Header, |key, value| match key {
        "alg" => fields.alg = Some(value),
        "typ" => fields.typ = Some(value),
        "cty" => fields.cty = Some(value),
        "twr" => fields.twr = Some(value),
        _ => {}
    })?;
    Ok(fields)
}

fn parse_claims(bytes: &[u8]) -> Result<ClaimFields, DecodeError> {
    let mut fields = ClaimFields::default();
    parse_object(bytes, Segment::Payload, |key, value| match key {
        "iss" => fields.iss = Some(value),
        "sub" => fields.sub = Some(value),
        "jti" => fields.jti = Some(value),
        "exp" => fields.exp = Some(value),
        "nbf" => fields.nbf = Some(value),
        "iat" => fields.iat = Some(value),
        "grants" => fields.grants = Some(value),
        _ => {}
    })?;
    Ok(fields)
}

/// Parses a JSON object, handing each member to `store` after checking it for validity and
/// repeated keys.
fn parse_object(
    bytes: &[u8],
    segment: Segment,
    store: impl FnMut(&str, Value),
) -> Result<(), DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { segment })?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = deserializer
        .deserialize_any(FieldsVisitor { store })
        .and_then(|is_object| {
            deserializer.end()?;
            Ok(is_object)
        });
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(DecodeError::NotAnObject { segment }),
        Err(error) => Err(json_error(&error, segment)),
    }
}

/// A JSON object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(value)))
    }
}

/// Visits the top-level value; returns false when it is not an object.
struct FieldsVisitor<F> {
    store: F,
}

impl<'de, F: FnMut(&str, Value)> Visitor<'de> for FieldsVisitor<F> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut access: A) -> Result<bool, A::Error> {
        let mut seen: Vec<Cow<'de, str>> = Vec::with_capacity(8);
        while let Some(Key(key)) = access.next_key::<Key<'de>>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format_args!(
                    "{DUPLICATE_KEY_PREFIX}{key}"
                )));
            }
            let value = access.next_value_seed(StrictValue)?;
            (self.store)(&key, value);
            seen.push(key);
        }
        Ok(true)
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element_seed(StrictValue)?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_headers_decode_to_twilio_header() {
        for encoded in KNOWN_HEADERS {
            let fields = parse_header(&decode(encoded, Segment::Header, 0).expect("base64"))
                .expect("header JSON");
            let expected = twilio_header();
            assert_eq!(fields.alg, expected.alg, "{encoded}");
            assert_eq!(fields.typ, expected.typ, "{encoded}");
            assert_eq!(fields.cty, expected.cty, "{encoded}");
            assert_eq!(fields.twr, None, "{encoded}");
        }
    }
}
