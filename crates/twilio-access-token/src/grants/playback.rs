use serde_json::{Map, Value};

use crate::error::MintError;
use crate::json;

/// The Live playback grant (`player`).
///
/// Its content is the grant object that Twilio's REST API returns for a PlayerStreamer
/// (`POST /v1/PlayerStreamers/{Sid}/PlaybackGrant`), copied as given. Without one the grant is
/// written as `{}`, as twilio-node does.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct PlaybackGrant {
    /// The grant object from the REST API, written with its keys in insertion order.
    pub grant: Map<String, Value>,
}

impl PlaybackGrant {
    /// Creates a grant from the REST API's grant object.
    pub fn new(grant: Map<String, Value>) -> Self {
        Self { grant }
    }

    pub(crate) fn validate(&self) -> Result<(), MintError> {
        for (key, value) in &self.grant {
            if let Some((path, value)) = json::find_unsafe_integer(value, &format!("player.{key}"))
            {
                return Err(MintError::UnsafeInteger { path, value });
            }
        }
        Ok(())
    }
}
