use crate::error::MintError;
use crate::sid::SidKind;

use super::{ObjectWriter, validate_optional_sid};

/// The TaskRouter grant (`task_router`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskRouterGrant {
    /// The workspace SID (`WS…`), written as `workspace_sid`.
    pub workspace_sid: Option<String>,
    /// The worker SID (`WK…`), written as `worker_sid`.
    pub worker_sid: Option<String>,
    /// The role, such as `worker` or `supervisor`, written as `role`.
    pub role: Option<String>,
}

impl TaskRouterGrant {
    /// Creates a grant with no fields, written as `{}`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the workspace SID (`WS…`).
    #[must_use]
    pub fn workspace_sid(mut self, sid: impl Into<String>) -> Self {
        self.workspace_sid = Some(sid.into());
        self
    }

    /// Sets the worker SID (`WK…`).
    #[must_use]
    pub fn worker_sid(mut self, sid: impl Into<String>) -> Self {
        self.worker_sid = Some(sid.into());
        self
    }

    /// Sets the role.
    #[must_use]
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    pub(crate) fn validate(&self) -> Result<(), MintError> {
        validate_optional_sid(
            "task_router.workspace_sid",
            SidKind::Workspace,
            &self.workspace_sid,
        )?;
        validate_optional_sid("task_router.worker_sid", SidKind::Worker, &self.worker_sid)
    }

    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let mut object = ObjectWriter::new(out);
        object.string("workspace_sid", &self.workspace_sid);
        object.string("worker_sid", &self.worker_sid);
        object.string("role", &self.role);
        object.finish();
    }
}
