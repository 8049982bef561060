//! Reading grants from their JSON form in a token's `grants` object.

use std::fmt;

use serde_json::{Map, Value};

use super::{
    ChatGrant, Grant, IpMessagingGrant, PlaybackGrant, SyncGrant, TaskRouterGrant, VideoGrant,
    VoiceGrant,
};

/// A grant in JSON that does not have the form Twilio defines.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantJsonError {
    /// The key is not a known grant.
    UnknownGrant {
        /// The key as given.
        key: String,
    },
    /// `identity` appeared among the grants; it is set on the token itself.
    IdentityInGrants,
    /// The grant or a nested member is not a JSON object.
    NotAnObject {
        /// Where, such as `chat` or `voice.outgoing`.
        path: String,
    },
    /// A member is not one the grant defines.
    UnknownField {
        /// The path to the member, such as `chat`.
        path: String,
        /// The member's key.
        field: String,
        /// The members the grant defines.
        known: &'static [&'static str],
    },
    /// A member has the wrong JSON type.
    WrongType {
        /// The member's path, such as `voice.incoming.allow`.
        path: String,
        /// The JSON type expected, such as `a string`.
        expected: &'static str,
    },
}

impl fmt::Display for GrantJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantJsonError::UnknownGrant { key } => write!(
                f,
                "unknown grant {key:?}: the known grants are {}",
                Grant::KEYS.join(", ")
            ),
            GrantJsonError::IdentityInGrants => f.write_str(
                "\"identity\" is not a grant: set the identity on the token, not in the grants \
                 object",
            ),
            GrantJsonError::NotAnObject { path } => {
                write!(f, "{path} must be a JSON object, such as {{}}")
            }
            GrantJsonError::UnknownField { path, field, known } => write!(
                f,
                "unknown field {field:?} in {path}: the known fields are {}",
                known.join(", ")
            ),
            GrantJsonError::WrongType { path, expected } => {
                write!(f, "{path} must be {expected}")
            }
        }
    }
}

impl std::error::Error for GrantJsonError {}

const CHAT_FIELDS: &[&str] = &[
    "service_sid",
    "endpoint_id",
    "deployment_role_sid",
    "push_credential_sid",
];
const VIDEO_FIELDS: &[&str] = &["room"];
const SYNC_FIELDS: &[&str] = &["service_sid", "endpoint_id"];
const TASK_ROUTER_FIELDS: &[&str] = &["workspace_sid", "worker_sid", "role"];
const VOICE_FIELDS: &[&str] = &["incoming", "outgoing", "push_credential_sid", "endpoint_id"];
const VOICE_INCOMING_FIELDS: &[&str] = &["allow"];
const VOICE_OUTGOING_FIELDS: &[&str] = &["application_sid", "params"];

impl Grant {
    /// Reads one grant from its key and JSON value, as written in a token.
    ///
    /// Field values are not checked here; [`AccessTokenBuilder::build`] checks them.
    ///
    /// [`AccessTokenBuilder::build`]: crate::AccessTokenBuilder::build
    ///
    /// # Errors
    ///
    /// Returns a [`GrantJsonError`] for an unknown key, an unknown member, or a member of the
    /// wrong JSON type.
    ///
    /// # Examples
    ///
    /// ```
    /// use twilio_access_token::Grant;
    ///
    /// let grant = Grant::from_json("video", &serde_json::json!({"room": "standup"}))?;
    /// assert_eq!(grant.key(), "video");
    /// # Ok::<(), twilio_access_token::GrantJsonError>(())
    /// ```
    pub fn from_json(key: &str, value: &Value) -> Result<Grant, GrantJsonError> {
        match key {
            "identity" => Err(GrantJsonError::IdentityInGrants),
            "chat" => chat_from_json(key, value).map(Grant::Chat),
            "ip_messaging" => {
                chat_from_json(key, value).map(|chat| Grant::IpMessaging(IpMessagingGrant(chat)))
            }
            "video" => {
                let members = object(key, value, VIDEO_FIELDS)?;
                Ok(Grant::Video(VideoGrant {
                    room: string(key, members, "room")?,
                }))
            }
            "data_sync" => {
                let members = object(key, value, SYNC_FIELDS)?;
                Ok(Grant::Sync(SyncGrant {
                    service_sid: string(key, members, "service_sid")?,
                    endpoint_id: string(key, members, "endpoint_id")?,
                }))
            }
            "task_router" => {
                let members = object(key, value, TASK_ROUTER_FIELDS)?;
                Ok(Grant::TaskRouter(TaskRouterGrant {
                    workspace_sid: string(key, members, "workspace_sid")?,
                    worker_sid: string(key, members, "worker_sid")?,
                    role: string(key, members, "role")?,
                }))
            }
            "voice" => voice_from_json(value).map(Grant::Voice),
            "player" => match value {
                Value::Object(grant) => Ok(Grant::Playback(PlaybackGrant::new(grant.clone()))),
                _ => Err(GrantJsonError::NotAnObject {
                    path: key.to_owned(),
                }),
            },
            _ => Err(GrantJsonError::UnknownGrant {
                key: key.to_owned(),
            }),
        }
    }

    /// Reads every grant of a `grants` object, in order, without `identity`.
    ///
    /// # Errors
    ///
    /// The first error of [`Grant::from_json`].
    pub fn list_from_json(grants: &Map<String, Value>) -> Result<Vec<Grant>, GrantJsonError> {
        grants
            .iter()
            .map(|(key, value)| Grant::from_json(key, value))
            .collect()
    }

    /// Returns the grant as the JSON value written in a token.
    pub fn to_json(&self) -> Value {
        let mut out = Vec::new();
        self.write_json(&mut out);
        // The writer emits valid JSON (the grant JSON tests parse it back), so `Null` is never
        // returned in practice.
        serde_json::from_slice(&out).unwrap_or(Value::Null)
    }
}

fn chat_from_json(key: &str, value: &Value) -> Result<ChatGrant, GrantJsonError> {
    let members = object(key, value, CHAT_FIELDS)?;
    Ok(ChatGrant {
        service_sid: string(key, members, "service_sid")?,
        endpoint_id: string(key, members, "endpoint_id")?,
        deployment_role_sid: string(key, members, "deployment_role_sid")?,
        push_credential_sid: string(key, members, "push_credential_sid")?,
    })
}

fn voice_from_json(value: &Value) -> Result<VoiceGrant, GrantJsonError> {
    let members = object("voice", value, VOICE_FIELDS)?;
    let mut voice = VoiceGrant {
        push_credential_sid: string("voice", members, "push_credential_sid")?,
        endpoint_id: string("voice", members, "endpoint_id")?,
        ..VoiceGrant::default()
    };
    if let Some(incoming) = members.get("incoming") {
        let incoming = object("voice.incoming", incoming, VOICE_INCOMING_FIELDS)?;
        voice.incoming_allow = match incoming.get("allow") {
            None => false,
            Some(Value::Bool(allow)) => *allow,
            Some(_) => {
                return Err(GrantJsonError::WrongType {
                    path: "voice.incoming.allow".to_owned(),
                    expected: "true or false",
                });
            }
        };
    }
    if let Some(outgoing) = members.get("outgoing") {
        let outgoing = object("voice.outgoing", outgoing, VOICE_OUTGOING_FIELDS)?;
        voice.outgoing_application_sid = string("voice.outgoing", outgoing, "application_sid")?;
        voice.outgoing_application_params = match outgoing.get("params") {
            None => None,
            Some(Value::Object(params)) => Some(params.clone()),
            Some(_) => {
                return Err(GrantJsonError::NotAnObject {
                    path: "voice.outgoing.params".into(),
                });
            }
        };
    }
    Ok(voice)
}

fn object<'a>(
    path: &str,
    value: &'a Value,
    known: &'static [&'static str],
) -> Result<&'a Map<String, Value>, GrantJsonError> {
    let Value::Object(members) = value else {
        return Err(GrantJsonError::NotAnObject {
            path: path.to_owned(),
        });
    };
    if let Some(field) = members
        .keys()
        .find(|field| !known.contains(&field.as_str()))
    {
        return Err(GrantJsonError::UnknownField {
            path: path.to_owned(),
            field: field.clone(),
            known,
        });
    }
    Ok(members)
}

fn string(
    path: &str,
    members: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, GrantJsonError> {
    match members.get(field) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(GrantJsonError::WrongType {
            path: format!("{path}.{field}"),
            expected: "a string",
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_grant_round_trips() {
        let grants = json!({
            "chat": {"service_sid": "IS1", "endpoint_id": "a:b:c", "deployment_role_sid": "RL1",
                     "push_credential_sid": "CR1"},
            "ip_messaging": {"service_sid": "IS2"},
            "video": {"room": "r"},
            "voice": {"incoming": {"allow": true},
                      "outgoing": {"application_sid": "AP1", "params": {"b": 1, "a": [true]}},
                      "push_credential_sid": "CR2", "endpoint_id": "e"},
            "data_sync": {"service_sid": "default", "endpoint_id": "s"},
            "task_router": {"workspace_sid": "WS1", "worker_sid": "WK1", "role": "worker"},
            "player": {"playbackUrl": "https://example.invalid/x", "requestCredentials": null}
        });
        let parsed = Grant::list_from_json(grants.as_object().expect("object")).expect("parses");
        let written: Map<String, Value> = parsed
            .iter()
            .map(|grant| (grant.key().to_owned(), grant.to_json()))
            .collect();
        assert_eq!(Value::Object(written), grants);
    }

    #[test]
    fn grant_json_errors() {
        assert_eq!(
            Grant::from_json("chatt", &json!({})),
            Err(GrantJsonError::UnknownGrant {
                key: "chatt".into()
            })
        );
        assert_eq!(
            Grant::from_json("identity", &json!("a")),
            Err(GrantJsonError::IdentityInGrants)
        );
        assert_eq!(
            Grant::from_json("video", &json!({"rooms": "x"})),
            Err(GrantJsonError::UnknownField {
                path: "video".into(),
                field: "rooms".into(),
                known: VIDEO_FIELDS
            })
        );
        assert_eq!(
            Grant::from_json("voice", &json!({"incoming": {"allow": "yes"}})),
            Err(GrantJsonError::WrongType {
                path: "voice.incoming.allow".into(),
                expected: "true or false"
            })
        );
        assert_eq!(
            Grant::from_json("chat", &json!({"service_sid": 1})),
            Err(GrantJsonError::WrongType {
                path: "chat.service_sid".into(),
                expected: "a string"
            })
        );
        assert_eq!(
            Grant::from_json("player", &json!([])),
            Err(GrantJsonError::NotAnObject {
                path: "player".into()
            })
        );
        assert_eq!(
            Grant::from_json("voice", &json!({"outgoing": {"params": 3}})),
            Err(GrantJsonError::NotAnObject {
                path: "voice.outgoing.params".into()
            })
        );
    }
}
