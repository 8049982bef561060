use crate::error::MintError;
use crate::sid::SidKind;

use super::{ObjectWriter, validate_optional_sid};

/// The Chat grant (`chat`), used by the Conversations SDKs and the Programmable Chat SDKs.
///
/// # Examples
///
/// ```
/// use twilio_access_token::ChatGrant;
///
/// let grant = ChatGrant::new().service_sid("IS00000000000000000000000000000001");
/// assert_eq!(grant.service_sid.as_deref(), Some("IS00000000000000000000000000000001"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatGrant {
    /// The Conversations or Chat service SID (`IS…`), written as `service_sid`.
    pub service_sid: Option<String>,
    /// The endpoint id (`endpoint_id`), which older Chat SDKs use to tell one user's devices
    /// apart; see [`endpoint_id`](crate::endpoint_id).
    pub endpoint_id: Option<String>,
    /// The deployment role SID (`RL…`), written as `deployment_role_sid`.
    pub deployment_role_sid: Option<String>,
    /// The push credential SID (`CR…`), written as `push_credential_sid`.
    pub push_credential_sid: Option<String>,
}

impl ChatGrant {
    /// Creates a grant with no fields, written as `{}`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the service SID (`IS…`).
    #[must_use]
    pub fn service_sid(mut self, sid: impl Into<String>) -> Self {
        self.service_sid = Some(sid.into());
        self
    }

    /// Sets the endpoint id.
    #[must_use]
    pub fn endpoint_id(mut self, endpoint_id: impl Into<String>) -> Self {
        self.endpoint_id = Some(endpoint_id.into());
        self
    }

    /// Sets the deployment role SID (`RL…`).
    #[must_use]
    pub fn deployment_role_sid(mut self, sid: impl Into<String>) -> Self {
        self.deployment_role_sid = Some(sid.into());
        self
    }

    /// Sets the push credential SID (`CR…`).
    #[must_use]
    pub fn push_credential_sid(mut self, sid: impl Into<String>) -> Self {
        self.push_credential_sid = Some(sid.into());
        self
    }

    pub(crate) fn validate(&self, key: &'static str) -> Result<(), MintError> {
        let [service, role, credential] = match key {
            "ip_messaging" => [
                "ip_messaging.service_sid",
                "ip_messaging.deployment_role_sid",
                "ip_messaging.push_credential_sid",
            ],
            _ => [
                "chat.service_sid",
                "chat.deployment_role_sid",
                "chat.push_credential_sid",
            ],
        };
        validate_optional_sid(service, SidKind::Service, &self.service_sid)?;
        validate_optional_sid(role, SidKind::Role, &self.deployment_role_sid)?;
        validate_optional_sid(credential, SidKind::Credential, &self.push_credential_sid)
    }

    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let mut object = ObjectWriter::new(out);
        object.string("service_sid", &self.service_sid);
        object.string("endpoint_id", &self.endpoint_id);
        object.string("deployment_role_sid", &self.deployment_role_sid);
        object.string("push_credential_sid", &self.push_credential_sid);
        object.finish();
    }
}

/// The legacy IP Messaging grant (`ip_messaging`), with the same fields as [`ChatGrant`].
///
/// **Deprecated by Twilio** in 2017 in favour of the Chat grant, and removed from the official
/// Node, Python and Ruby libraries. It is still needed by Programmable Chat SDKs older than
/// JavaScript 0.11, iOS 0.16 and Android 0.11. New apps should use [`ChatGrant`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpMessagingGrant(pub ChatGrant);

impl IpMessagingGrant {
    /// Wraps Chat grant fields to be written under the legacy `ip_messaging` key.
    pub fn new(fields: ChatGrant) -> Self {
        Self(fields)
    }
}
