use crate::error::MintError;
use crate::sid::validate_sync_service_sid;

use super::{ObjectWriter, present};

/// The Sync grant (`data_sync`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncGrant {
    /// The Sync service SID (`IS…`) or `default`, written as `service_sid`.
    pub service_sid: Option<String>,
    /// The endpoint id, written as `endpoint_id`.
    pub endpoint_id: Option<String>,
}

impl SyncGrant {
    /// Creates a grant with no fields, written as `{}`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the Sync service SID (`IS…`), or `default` for the account's default service.
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

    pub(crate) fn validate(&self) -> Result<(), MintError> {
        match present(&self.service_sid) {
            Some(sid) => validate_sync_service_sid(sid).map_err(|error| MintError::InvalidSid {
                field: "data_sync.service_sid",
                error,
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let mut object = ObjectWriter::new(out);
        object.string("service_sid", &self.service_sid);
        object.string("endpoint_id", &self.endpoint_id);
        object.finish();
    }
}
