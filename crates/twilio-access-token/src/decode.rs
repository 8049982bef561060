//! Splitting and parsing a compact token without checking its signature.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The largest token accepted for decoding: 16 KiB. Real Access Tokens are under 2 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// One of the three dot-separated parts of a compact token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// The first part, the JOSE header.
    Header,
    /// The second part, the claims.
    Payload,
    /// The third part, the signature.
    Signature,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Segment::Header => "header",
            Segment::Payload => "payload",
            Segment::Signature => "signature",
        })
    }
}

/// An error from splitting and parsing a compact token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is empty.
    Empty,
    /// The input is longer than [`MAX_TOKEN_BYTES`].
    TooLarge {
        /// The input length in bytes.
        len: usize,
    },
    /// The input does not have exactly three dot-separated parts.
    SegmentCount {
        /// The number of parts found.
        found: usize,
    },
    /// A part is not base64url without padding.
    InvalidBase64 {
        /// Which part.
        segment: Segment,
        /// The byte offset of the first bad character inside the whole token, if one is to
        /// blame (otherwise the part's length is impossible for base64).
        offset: Option<usize>,
    },
    /// The part's last base64url character sets bits beyond the encoded bytes, so the part
    /// has another spelling than the one every encoder writes.
    TrailingBits {
        /// Which part.
        segment: Segment,
    },
    /// The header or payload is not UTF-8.
    InvalidUtf8 {
        /// Which part.
        segment: Segment,
    },
    /// The header or payload is not valid JSON.
    InvalidJson {
        /// Which part.
        segment: Segment,
        /// The JSON parser's message.
        message: String,
    },
    /// The header or payload is JSON but not an object.
    NotAnObject {
        /// Which part.
        segment: Segment,
    },
    /// An object in the header or payload has the same key twice, which parsers resolve
    /// differently.
    DuplicateKey {
        /// Which part.
        segment: Segment,
        /// The repeated key.
        key: String,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("the token is empty"),
            DecodeError::TooLarge { len } => write!(
                f,
                "the token is {len} bytes long: the maximum is {MAX_TOKEN_BYTES}, and Access \
                 Tokens are usually under 2000 bytes"
            ),
            DecodeError::SegmentCount { found: 1 } => f.write_str(
                "the token has no dots: a JWT has three dot-separated parts \
                 (header.payload.signature), so check that it was copied whole",
            ),
            DecodeError::SegmentCount { found } => write!(
                f,
                "the token has {found} dot-separated parts: a JWT has exactly three \
                 (header.payload.signature), so check that it was copied whole"
            ),
            DecodeError::InvalidBase64 {
                segment,
                offset: Some(offset),
            } => write!(
                f,
                "the {segment} is not base64url: unexpected character at byte {offset} (padding, \
                 '+', '/' and whitespace are not allowed)"
            ),
            DecodeError::InvalidBase64 {
                segment,
                offset: None,
            } => write!(
                f,
                "the {segment} is not base64url: its length is impossible, so it was probably \
                 cut short"
            ),
            DecodeError::TrailingBits { segment } => write!(
                f,
                "the {segment} is not canonical base64url: its last character has unused bits \
                 set, so the token was changed after it was encoded"
            ),
            DecodeError::InvalidUtf8 { segment } => {
                write!(f, "the {segment} decodes to bytes that are not UTF-8 text")
            }
            DecodeError::InvalidJson { segment, message } => {
                write!(f, "the {segment} is not valid JSON: {message}")
            }
            DecodeError::NotAnObject { segment } => {
                write!(f, "the {segment} is JSON but not an object")
            }
            DecodeError::DuplicateKey { segment, key } => write!(
                f,
                "the {segment} has the key {key:?} more than once, so parsers may disagree on \
                 its value"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A token split into its parts and parsed, with the signature **not** checked.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedToken {
    /// The header object, keys in token order.
    pub header: Map<String, Value>,
    /// The claims object, keys in token order.
    pub claims: Map<String, Value>,
    /// The raw signature bytes.
    pub signature: Vec<u8>,
    /// The length of `header.payload` at the start of the token: the bytes the signature
    /// covers.
    pub signing_input_len: usize,
}

/// Splits and parses a compact token. Nothing is verified.
pub(crate) fn decode_parts(token: &str) -> Result<UnverifiedToken, DecodeError> {
    if token.is_empty() {
        return Err(DecodeError::Empty);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(DecodeError::TooLarge { len: token.len() });
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(DecodeError::SegmentCount { found: parts.len() });
    };

    let payload_offset = header.len() + 1;
    let signature_offset = payload_offset + payload.len() + 1;
    let header_bytes = decode_base64(header, Segment::Header, 0)?;
    let payload_bytes = decode_base64(payload, Segment::Payload, payload_offset)?;
    let signature = decode_base64(signature, Segment::Signature, signature_offset)?;

    Ok(UnverifiedToken {
        header: parse_object(&header_bytes, Segment::Header)?,
        claims: parse_object(&payload_bytes, Segment::Payload)?,
        signature,
        signing_input_len: signature_offset - 1,
    })
}

fn decode_base64(text: &str, segment: Segment, offset: usize) -> Result<Vec<u8>, DecodeError> {
    // The strict engine also rejects non-zero trailing bits, so each token has one spelling.
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| base64_error(text, segment, offset))
}

/// Explains why `text`, which starts at byte `offset` of the token, is not canonical base64url.
pub(crate) fn base64_error(text: &str, segment: Segment, offset: usize) -> DecodeError {
    let bad = text
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    match bad {
        Some(position) => DecodeError::InvalidBase64 {
            segment,
            offset: Some(offset + position),
        },
        None if text.len() % 4 == 1 => DecodeError::InvalidBase64 {
            segment,
            offset: None,
        },
        None => DecodeError::TrailingBits { segment },
    }
}

fn parse_object(bytes: &[u8], segment: Segment) -> Result<Map<String, Value>, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { segment })?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue
        .deserialize(&mut deserializer)
        .and_then(|value| {
            deserializer.end()?;
            Ok(value)
        });
    let value = value.map_err(|error| json_error(&error, segment))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(DecodeError::NotAnObject { segment }),
    }
}

/// Parses JSON text strictly (repeated keys are an error) into a value.
pub(crate) fn parse_value(text: &str, segment: Segment) -> Result<Value, DecodeError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    StrictValue
        .deserialize(&mut deserializer)
        .and_then(|value| {
            deserializer.end()?;
            Ok(value)
        })
        .map_err(|error| json_error(&error, segment))
}

/// Turns a parser error into a [`DecodeError`], recognising repeated keys.
pub(crate) fn json_error(error: &serde_json::Error, segment: Segment) -> DecodeError {
    let message = error.to_string();
    match message.strip_prefix(DUPLICATE_KEY_PREFIX) {
        Some(rest) => DecodeError::DuplicateKey {
            segment,
            key: rest
                .rsplit_once(" at line ")
                .map_or(rest, |(key, _)| key)
                .to_owned(),
        },
        None => DecodeError::InvalidJson { segment, message },
    }
}

pub(crate) const DUPLICATE_KEY_PREFIX: &str = "duplicate key: ";

/// Deserializes a JSON value like `serde_json::Value` does, but fails on a repeated object key.
pub(crate) struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "{DUPLICATE_KEY_PREFIX}{key}"
                )));
            }
            let value = access.next_value_seed(StrictValue)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", encode(header), encode(payload))
    }

    #[test]
    fn parts_decoded_in_order() {
        let parts =
            decode_parts(&token(r#"{"b":1,"a":2}"#, r#"{"z":[1,{"y":null}]}"#)).expect("decodes");
        assert_eq!(parts.header.keys().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(parts.claims["z"][1]["y"], Value::Null);
        assert_eq!(parts.signature, b"sig");
    }

    #[test]
    fn structure_errors() {
        assert_eq!(decode_parts(""), Err(DecodeError::Empty));
        assert_eq!(
            decode_parts("a.b"),
            Err(DecodeError::SegmentCount { found: 2 })
        );
        assert_eq!(
            decode_parts("a.b.c.d"),
            Err(DecodeError::SegmentCount { found: 4 })
        );
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            decode_parts(&long),
            Err(DecodeError::TooLarge {
                len: MAX_TOKEN_BYTES + 1
            })
        );
    }

    #[test]
    fn base64_errors_name_offset() {
        let good = token("{}", "{}");
        let padded = format!("{}=", good);
        assert_eq!(
            decode_parts(&padded),
            Err(DecodeError::InvalidBase64 {
                segment: Segment::Signature,
                offset: Some(good.len())
            })
        );
        assert_eq!(
            decode_parts("e30.e30.a"),
            Err(DecodeError::InvalidBase64 {
                segment: Segment::Signature,
                offset: None
            })
        );
        assert_eq!(
            decode_parts("e30.e3 0.c2ln"),
            Err(DecodeError::InvalidBase64 {
                segment: Segment::Payload,
                offset: Some(6)
            })
        );
    }

    #[test]
    fn json_errors() {
        assert_eq!(
            decode_parts(&token("[]", "{}")),
            Err(DecodeError::NotAnObject {
                segment: Segment::Header
            })
        );
        assert_eq!(
            decode_parts(&token("{}", r#"{"a":{"k":1,"k":2}}"#)),
            Err(DecodeError::DuplicateKey {
                segment: Segment::Payload,
                key: "k".into()
            })
        );
        assert!(matches!(
            decode_parts(&token("{}", "{")),
            Err(DecodeError::InvalidJson {
                segment: Segment::Payload,
                ..
            })
        ));
        assert!(matches!(
            decode_parts(&token("{} x", "{}")),
            Err(DecodeError::InvalidJson {
                segment: Segment::Header,
                ..
            })
        ));
        let not_utf8 = format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode([0xff, 0xfe]));
        assert_eq!(
            decode_parts(&not_utf8),
            Err(DecodeError::InvalidUtf8 {
                segment: Segment::Header
            })
        );
    }
}
