//! The grants an Access Token can carry, one module per product.
//!
//! Every string field is optional: an unset or empty field is left out of the token, and a grant
//! with no fields is written as `{}`, as the official helper libraries do.

mod chat;
mod playback;
mod sync;
mod task_router;
mod video;
mod voice;
mod wire;

pub use chat::{ChatGrant, IpMessagingGrant};
pub use playback::PlaybackGrant;
pub use sync::SyncGrant;
pub use task_router::TaskRouterGrant;
pub use video::VideoGrant;
pub use voice::VoiceGrant;
pub use wire::GrantJsonError;

use crate::error::MintError;
use crate::json;
use crate::sid::{SidKind, validate_sid};

/// One grant of an Access Token.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Grant {
    /// Chat and Conversations (`chat`).
    Chat(ChatGrant),
    /// The legacy IP Messaging grant (`ip_messaging`), deprecated by Twilio in favour of
    /// [`Grant::Chat`].
    IpMessaging(IpMessagingGrant),
    /// Video (`video`).
    Video(VideoGrant),
    /// Voice (`voice`).
    Voice(VoiceGrant),
    /// Sync (`data_sync`).
    Sync(SyncGrant),
    /// TaskRouter (`task_router`).
    TaskRouter(TaskRouterGrant),
    /// Live playback (`player`).
    Playback(PlaybackGrant),
}

impl Grant {
    /// The grant keys in the token, in the order of the variants.
    pub const KEYS: [&'static str; 7] = [
        "chat",
        "ip_messaging",
        "video",
        "voice",
        "data_sync",
        "task_router",
        "player",
    ];

    /// Returns the key of this grant inside the token's `grants` object, such as `data_sync`.
    pub fn key(&self) -> &'static str {
        match self {
            Grant::Chat(_) => "chat",
            Grant::IpMessaging(_) => "ip_messaging",
            Grant::Video(_) => "video",
            Grant::Voice(_) => "voice",
            Grant::Sync(_) => "data_sync",
            Grant::TaskRouter(_) => "task_router",
            Grant::Playback(_) => "player",
        }
    }

    pub(crate) fn validate(&self) -> Result<(), MintError> {
        match self {
            Grant::Chat(grant) => grant.validate("chat"),
            Grant::IpMessaging(grant) => grant.0.validate("ip_messaging"),
            Grant::Video(_) => Ok(()),
            Grant::Voice(grant) => grant.validate(),
            Grant::Sync(grant) => grant.validate(),
            Grant::TaskRouter(grant) => grant.validate(),
            Grant::Playback(grant) => grant.validate(),
        }
    }

    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Grant::Chat(grant) => grant.write_json(out),
            Grant::IpMessaging(grant) => grant.0.write_json(out),
            Grant::Video(grant) => grant.write_json(out),
            Grant::Voice(grant) => grant.write_json(out),
            Grant::Sync(grant) => grant.write_json(out),
            Grant::TaskRouter(grant) => grant.write_json(out),
            Grant::Playback(grant) => json::write_object(out, &grant.grant),
        }
    }
}

macro_rules! grant_from {
    ($($grant:ident => $variant:ident),* $(,)?) => {
        $(impl From<$grant> for Grant {
            fn from(grant: $grant) -> Grant {
                Grant::$variant(grant)
            }
        })*
    };
}

grant_from!(
    ChatGrant => Chat,
    IpMessagingGrant => IpMessaging,
    VideoGrant => Video,
    VoiceGrant => Voice,
    SyncGrant => Sync,
    TaskRouterGrant => TaskRouter,
    PlaybackGrant => Playback,
);

/// Returns the field's value when it is set and not empty.
pub(crate) fn present(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|value| !value.is_empty())
}

/// Validates an optional SID field, skipping unset and empty values.
pub(crate) fn validate_optional_sid(
    field: &'static str,
    kind: SidKind,
    value: &Option<String>,
) -> Result<(), MintError> {
    match present(value) {
        Some(value) => {
            validate_sid(kind, value).map_err(|error| MintError::InvalidSid { field, error })
        }
        None => Ok(()),
    }
}

/// Writes a JSON object member by member, leaving out unset and empty string fields.
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> ObjectWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter { out, empty: true }
    }

    /// Starts a member and returns the buffer to write its value into.
    pub(crate) fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        json::write_str(self.out, key);
        self.out.push(b':');
        self.out
    }

    pub(crate) fn string(&mut self, key: &str, value: &Option<String>) {
        if let Some(value) = present(value) {
            json::write_str(self.key(key), value);
        }
    }

    pub(crate) fn finish(self) {
        self.out.push(b'}');
    }
}
