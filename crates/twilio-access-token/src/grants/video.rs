use super::ObjectWriter;

/// The Video grant (`video`).
///
/// Without a room the token may join any room the account's rules allow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VideoGrant {
    /// The room name or room SID (`RM…`) the token may join, written as `room`.
    pub room: Option<String>,
}

impl VideoGrant {
    /// Creates a grant with no room, written as `{}`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits the grant to one room, by name or SID.
    #[must_use]
    pub fn room(mut self, room: impl Into<String>) -> Self {
        self.room = Some(room.into());
        self
    }

    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let mut object = ObjectWriter::new(out);
        object.string("room", &self.room);
        object.finish();
    }
}
