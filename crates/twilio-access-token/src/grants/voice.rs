use serde_json::{Map, Value};

use crate::error::MintError;
use crate::json;
use crate::sid::SidKind;

use super::{ObjectWriter, present, validate_optional_sid};

/// The Voice grant (`voice`).
///
/// # Examples
///
/// ```
/// use twilio_access_token::VoiceGrant;
///
/// let grant = VoiceGrant::new()
///     .incoming_allow(true)
///     .outgoing_application_sid("AP00000000000000000000000000000005")
///     .outgoing_param("To", "+15005550006");
/// assert!(grant.incoming_allow);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct VoiceGrant {
    /// Whether the client may receive calls, written as `incoming.allow`. `false` leaves the
    /// member out.
    pub incoming_allow: bool,
    /// The TwiML application SID (`AP…`) for outgoing calls, written as
    /// `outgoing.application_sid`.
    pub outgoing_application_sid: Option<String>,
    /// Parameters passed to the outgoing application, written as `outgoing.params` with keys
    /// in insertion order. They need an outgoing application SID.
    pub outgoing_application_params: Option<Map<String, Value>>,
    /// The push credential SID (`CR…`) for incoming call notifications.
    pub push_credential_sid: Option<String>,
    /// The endpoint id.
    pub endpoint_id: Option<String>,
}

impl VoiceGrant {
    /// Creates a grant with no fields, written as `{}`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows or disallows incoming calls.
    #[must_use]
    pub fn incoming_allow(mut self, allow: bool) -> Self {
        self.incoming_allow = allow;
        self
    }

    /// Sets the TwiML application SID (`AP…`) for outgoing calls.
    #[must_use]
    pub fn outgoing_application_sid(mut self, sid: impl Into<String>) -> Self {
        self.outgoing_application_sid = Some(sid.into());
        self
    }

    /// Replaces the outgoing application parameters with a JSON object.
    #[must_use]
    pub fn outgoing_application_params(mut self, params: Map<String, Value>) -> Self {
        self.outgoing_application_params = Some(params);
        self
    }

    /// Adds one outgoing application parameter, replacing an earlier one of the same key.
    #[must_use]
    pub fn outgoing_param(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.outgoing_application_params
            .get_or_insert_with(Map::new)
            .insert(key.into(), value.into());
        self
    }

    /// Sets the push credential SID (`CR…`).
    #[must_use]
    pub fn push_credential_sid(mut self, sid: impl Into<String>) -> Self {
        self.push_credential_sid = Some(sid.into());
        self
    }

    /// Sets the endpoint id.
    #[must_use]
    pub fn endpoint_id(mut self, endpoint_id: impl Into<String>) -> Self {
        self.endpoint_id = Some(endpoint_id.into());
        self
    }

    pub(crate) fn validate(&self) -> Result<(), MintError> {
        validate_optional_sid(
            "voice.outgoing.application_sid",
            SidKind::Application,
            &self.outgoing_application_sid,
        )?;
        validate_optional_sid(
            "voice.push_credential_sid",
            SidKind::Credential,
            &self.push_credential_sid,
        )?;
        let Some(params) = &self.outgoing_application_params else {
            return Ok(());
        };
        if present(&self.outgoing_application_sid).is_none() {
            return Err(MintError::VoiceParamsWithoutApplication);
        }
        for (key, value) in params {
            let path = format!("voice.outgoing.params.{key}");
            if let Some((path, value)) = json::find_unsafe_integer(value, &path) {
                return Err(MintError::UnsafeInteger { path, value });
            }
        }
        Ok(())
    }

    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let mut object = ObjectWriter::new(out);
        if self.incoming_allow {
            object
                .key("incoming")
                .extend_from_slice(br#"{"allow":true}"#);
        }
        if let Some(application_sid) = present(&self.outgoing_application_sid) {
            let outgoing = object.key("outgoing");
            outgoing.extend_from_slice(br#"{"application_sid":"#);
            json::write_str(outgoing, application_sid);
            // twilio-node writes `params` whenever it is an object, `{}` included.
            if let Some(params) = &self.outgoing_application_params {
                outgoing.extend_from_slice(br#","params":"#);
                json::write_object(outgoing, params);
            }
            outgoing.push(b'}');
        }
        object.string("push_credential_sid", &self.push_credential_sid);
        object.string("endpoint_id", &self.endpoint_id);
        object.finish();
    }
}
