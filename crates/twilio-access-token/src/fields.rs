//! The verifier's parsing path: the same checks as [`decode_parts`](crate::decode), but the
//! header and the claims are read into fixed fields instead of maps, which halves the cost of
//! verification.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::ops::Range;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::decode::{
    DUPLICATE_KEY_PREFIX, DecodeError, MAX_TOKEN_BYTES, Segment, StrictValue, base64_error,
    json_error,
};
use crate::grants::{ChatGrant, Grant, IpMessagingGrant, SyncGrant, TaskRouterGrant, VideoGrant};

/// The header members Twilio defines, each as given.
#[derive(Debug, Default)]
pub(crate) struct HeaderFields {
    pub(crate) alg: Option<Value>,
    pub(crate) typ: Option<Value>,
    pub(crate) cty: Option<Value>,
    pub(crate) twr: Option<Value>,
    pub(crate) crit: Option<Value>,
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
    /// The position of the `grants` value in the payload text, which is parsed only after the
    /// signature holds.
    pub(crate) grants: Option<Range<usize>>,
}

/// A token split and parsed for verification.
#[derive(Debug)]
pub(crate) struct TokenFields<'b> {
    /// The decoded payload.
    pub(crate) payload: Cow<'b, str>,
    /// The header's fields, or `None` for one of the [`KNOWN_HEADERS`], which pass every check.
    pub(crate) header: Option<HeaderFields>,
    /// The index of the header in [`KNOWN_HEADERS`], when it is one of them.
    pub(crate) known_header: Option<usize>,
    pub(crate) claims: ClaimFields,
    pub(crate) signature: [u8; 32],
    /// The number of signature bytes decoded; anything but 32 cannot match HMAC-SHA256.
    pub(crate) signature_len: usize,
    pub(crate) signing_input_len: usize,
}

/// Splits and parses a token, reporting the same errors in the same order as
/// `decode_parts`: size, parts, base64 of each part, header JSON, payload JSON.
/// The payload is decoded into `buffer` when it fits, which saves an allocation.
pub(crate) fn parse_token<'b>(
    token: &str,
    buffer: &'b mut [u8],
) -> Result<TokenFields<'b>, DecodeError> {
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
    let known_header = KNOWN_HEADERS.iter().position(|known| *known == header);
    let known = known_header.is_some();
    let header_bytes = if known {
        Vec::new()
    } else {
        decode(header, Segment::Header, 0)?
    };
    let payload_bytes: Cow<'b, [u8]> = if payload.len() / 4 * 3 + 3 <= buffer.len() {
        let len = URL_SAFE_NO_PAD
            .decode_slice(payload, &mut *buffer)
            .map_err(|_| base64_error(payload, Segment::Payload, payload_offset))?;
        Cow::Borrowed(&buffer[..len])
    } else {
        Cow::Owned(decode(payload, Segment::Payload, payload_offset)?)
    };
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
        None
    } else {
        Some(parse_header(&header_bytes)?)
    };
    let invalid_utf8 = |_| DecodeError::InvalidUtf8 {
        segment: Segment::Payload,
    };
    let payload: Cow<'b, str> = match payload_bytes {
        Cow::Borrowed(bytes) => Cow::Borrowed(std::str::from_utf8(bytes).map_err(invalid_utf8)?),
        Cow::Owned(bytes) => {
            Cow::Owned(
                String::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 {
                    segment: Segment::Payload,
                })?,
            )
        }
    };
    let claims = parse_claims(&payload)?;
    Ok(TokenFields {
        payload,
        header,
        known_header,
        claims,
        signature: signature_bytes,
        signature_len,
        signing_input_len: signature_offset - 1,
    })
}

/// The base64url encodings of the headers the official libraries write without a region:
/// twilio-node's order, PyJWT's sorted order, and the order of PHP and Twilio's documentation.
pub(crate) const KNOWN_HEADERS: [&str; 3] = [
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImN0eSI6InR3aWxpby1mcGE7dj0xIn0",
    "eyJhbGciOiJIUzI1NiIsImN0eSI6InR3aWxpby1mcGE7dj0xIiwidHlwIjoiSldUIn0",
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiIsImN0eSI6InR3aWxpby1mcGE7dj0xIn0",
];

/// Returns the fields of every header in [`KNOWN_HEADERS`].
#[cfg(test)]
fn twilio_header() -> HeaderFields {
    HeaderFields {
        alg: Some(Value::String("HS256".into())),
        typ: Some(Value::String("JWT".into())),
        cty: Some(Value::String(crate::jwt::CONTENT_TYPE.into())),
        twr: None,
        crit: None,
    }
}

fn decode(text: &str, segment: Segment, offset: usize) -> Result<Vec<u8>, DecodeError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| base64_error(text, segment, offset))
}

fn parse_header(bytes: &[u8]) -> Result<HeaderFields, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 {
        segment: Segment::Header,
    })?;
    let mut fields = HeaderFields::default();
    parse_object(text, Segment::Header, None, |key, value| match key {
        "alg" => fields.alg = Some(value),
        "typ" => fields.typ = Some(value),
        "cty" => fields.cty = Some(value),
        "twr" => fields.twr = Some(value),
        "crit" => fields.crit = Some(value),
        _ => {}
    })?;
    Ok(fields)
}

fn parse_claims(text: &str) -> Result<ClaimFields, DecodeError> {
    let mut fields = ClaimFields::default();
    let grants = parse_object(
        text,
        Segment::Payload,
        Some("grants"),
        |key, value| match key {
            "iss" => fields.iss = Some(value),
            "sub" => fields.sub = Some(value),
            "jti" => fields.jti = Some(value),
            "exp" => fields.exp = Some(value),
            "nbf" => fields.nbf = Some(value),
            "iat" => fields.iat = Some(value),
            _ => {}
        },
    )?;
    fields.grants = grants;
    Ok(fields)
}

/// Parses a JSON object, handing each member to `store` after checking it for validity and
/// repeated keys. The member named `raw_key` is only checked for syntax, and its position in
/// `text` is returned.
fn parse_object(
    text: &str,
    segment: Segment,
    raw_key: Option<&'static str>,
    store: impl FnMut(&str, Value),
) -> Result<Option<Range<usize>>, DecodeError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let visitor = FieldsVisitor {
        store,
        raw_key,
        base: text.as_ptr() as usize,
    };
    let result = deserializer.deserialize_any(visitor).and_then(|outcome| {
        deserializer.end()?;
        Ok(outcome)
    });
    match result {
        Ok(Some(raw)) => Ok(raw),
        Ok(None) => Err(DecodeError::NotAnObject { segment }),
        Err(error) => Err(json_error(&error, segment)),
    }
}

/// The keys of one JSON object seen so far. The usual keys of Access Tokens are kept as bits, so
/// the common case allocates nothing.
#[derive(Default)]
struct SeenKeys {
    known: u32,
    others: Vec<String>,
}

impl SeenKeys {
    const KNOWN: [&'static str; 18] = [
        "alg",
        "typ",
        "cty",
        "twr",
        "jti",
        "grants",
        "nbf",
        "iat",
        "exp",
        "iss",
        "sub",
        "identity",
        "chat",
        "ip_messaging",
        "video",
        "voice",
        "data_sync",
        "task_router",
    ];

    /// Records a key and returns false when it was already seen.
    fn insert(&mut self, key: &str) -> bool {
        match Self::KNOWN.iter().position(|known| *known == key) {
            Some(index) => {
                let bit = 1 << index;
                let new = self.known & bit == 0;
                self.known |= bit;
                new
            }
            None if self.others.iter().any(|other| other == key) => false,
            None => {
                self.others.push(key.to_owned());
                true
            }
        }
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

/// Visits the top-level value; returns `None` when it is not an object, and otherwise the
/// position of the raw member, if any.
struct FieldsVisitor<F> {
    store: F,
    raw_key: Option<&'static str>,
    /// The address of the parsed text, to turn the raw member into a range.
    base: usize,
}

type Outcome = Option<Option<Range<usize>>>;

impl<'de, F: FnMut(&str, Value)> Visitor<'de> for FieldsVisitor<F> {
    type Value = Outcome;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut access: A) -> Result<Outcome, A::Error> {
        let mut seen = SeenKeys::default();
        let mut raw = None;
        while let Some(Key(key)) = access.next_key::<Key<'de>>()? {
            if !seen.insert(&key) {
                return Err(de::Error::custom(format_args!(
                    "{DUPLICATE_KEY_PREFIX}{key}"
                )));
            }
            if self.raw_key == Some(&*key) {
                let value = access.next_value::<&'de RawValue>()?.get();
                let start = value.as_ptr() as usize - self.base;
                raw = Some(start..start + value.len());
            } else {
                let value = access.next_value_seed(StrictValue)?;
                (self.store)(&key, value);
            }
        }
        Ok(Some(raw))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Outcome, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Outcome, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Outcome, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Outcome, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Outcome, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Outcome, E> {
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Outcome, A::Error> {
        while seq.next_element_seed(StrictValue)?.is_some() {}
        Ok(None)
    }
}

/// Reads a well-formed grants object straight into typed grants, without building JSON
/// values. Returns `None` for anything it does not handle (a repeated, unknown or escaped key, a
/// value of the wrong type, a missing identity, Voice and playback grants), and the caller then
/// takes the general path, which reports the exact error.
pub(crate) fn fast_grants(text: &str) -> Option<(String, Vec<Grant>)> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let grants = deserializer.deserialize_map(FastGrantsVisitor).ok()?;
    deserializer.end().ok()?;
    grants
}

struct FastGrantsVisitor;

impl<'de> Visitor<'de> for FastGrantsVisitor {
    type Value = Option<(String, Vec<Grant>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a grants object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut seen = SeenKeys::default();
        let mut identity = None;
        let mut grants = Vec::new();
        while let Some(key) = access.next_key::<&'de str>()? {
            if !seen.insert(key) {
                return Ok(None);
            }
            if key == "identity" {
                identity = Some(access.next_value::<String>()?);
                continue;
            }
            // Derived struct parsers also accept arrays, which grants must not be.
            let raw = access.next_value::<&'de RawValue>()?.get();
            if !raw.starts_with('{') {
                return Ok(None);
            }
            let grant = match key {
                "chat" => {
                    serde_json::from_str::<WireChat>(raw).map(|wire| Grant::Chat(wire.into()))
                }
                "ip_messaging" => serde_json::from_str::<WireChat>(raw)
                    .map(|wire| Grant::IpMessaging(IpMessagingGrant(wire.into()))),
                "video" => {
                    serde_json::from_str::<WireVideo>(raw).map(|wire| Grant::Video(wire.into()))
                }
                "data_sync" => {
                    serde_json::from_str::<WireSync>(raw).map(|wire| Grant::Sync(wire.into()))
                }
                "task_router" => serde_json::from_str::<WireTaskRouter>(raw)
                    .map(|wire| Grant::TaskRouter(wire.into())),
                _ => return Ok(None),
            };
            match grant {
                Ok(grant) => grants.push(grant),
                Err(_) => return Ok(None),
            }
        }
        Ok(identity.map(|identity| (identity, grants)))
    }
}

/// Deserializes a present field as a string; `null` is an error, as on the general path.
fn present_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    <String as de::Deserialize>::deserialize(deserializer).map(Some)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireChat {
    #[serde(default, deserialize_with = "present_string")]
    service_sid: Option<String>,
    #[serde(default, deserialize_with = "present_string")]
    endpoint_id: Option<String>,
    #[serde(default, deserialize_with = "present_string")]
    deployment_role_sid: Option<String>,
    #[serde(default, deserialize_with = "present_string")]
    push_credential_sid: Option<String>,
}

impl From<WireChat> for ChatGrant {
    fn from(wire: WireChat) -> ChatGrant {
        let mut grant = ChatGrant::new();
        grant.service_sid = wire.service_sid;
        grant.endpoint_id = wire.endpoint_id;
        grant.deployment_role_sid = wire.deployment_role_sid;
        grant.push_credential_sid = wire.push_credential_sid;
        grant
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireVideo {
    #[serde(default, deserialize_with = "present_string")]
    room: Option<String>,
}

impl From<WireVideo> for VideoGrant {
    fn from(wire: WireVideo) -> VideoGrant {
        let mut grant = VideoGrant::new();
        grant.room = wire.room;
        grant
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSync {
    #[serde(default, deserialize_with = "present_string")]
    service_sid: Option<String>,
    #[serde(default, deserialize_with = "present_string")]
    endpoint_id: Option<String>,
}

impl From<WireSync> for SyncGrant {
    fn from(wire: WireSync) -> SyncGrant {
        let mut grant = SyncGrant::new();
        grant.service_sid = wire.service_sid;
        grant.endpoint_id = wire.endpoint_id;
        grant
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTaskRouter {
    #[serde(default, deserialize_with = "present_string")]
    workspace_sid: Option<String>,
    #[serde(default, deserialize_with = "present_string")]
    worker_sid: Option<String>,
    #[serde(default, deserialize_with = "present_string")]
    role: Option<String>,
}

impl From<WireTaskRouter> for TaskRouterGrant {
    fn from(wire: WireTaskRouter) -> TaskRouterGrant {
        let mut grant = TaskRouterGrant::new();
        grant.workspace_sid = wire.workspace_sid;
        grant.worker_sid = wire.worker_sid;
        grant.role = wire.role;
        grant
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
