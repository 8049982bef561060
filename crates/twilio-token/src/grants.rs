//! The grants of a minted token: from `--grants-json` and from the per-grant flags.

use serde_json::Value;
use twilio_access_token::{
    ChatGrant, Grant, MintError, SyncGrant, TaskRouterGrant, VideoGrant, VoiceGrant, endpoint_id,
    validate_identity,
};

use crate::cli::{ChatArgs, MintArgs, SyncArgs, TaskRouterArgs, VideoArgs, VoiceArgs};
use crate::error::CliError;
use crate::input::{self, Source};

/// Reads a `grants` object in Twilio's wire format, keeping the order of its members.
///
/// A grant key given twice keeps its first position and takes the last value, because serde_json
/// reads objects that way. The builder treats a grant type added twice the same way.
///
/// # Errors
///
/// Returns [`CliError::GrantsNotJson`] for text that is not JSON, [`CliError::Input`] for JSON
/// that is not an object, and [`CliError::GrantJson`] for a grant not in Twilio's form.
pub(crate) fn from_json(source: &Source) -> Result<Vec<Grant>, CliError> {
    let bytes = input::read_bytes(source, "the grants JSON")?;

    let value: Value = serde_json::from_slice(&bytes).map_err(|error| CliError::GrantsNotJson {
        origin: source.to_string(),
        source: error,
    })?;

    let Value::Object(grants) = value else {
        return Err(CliError::Input(format!(
            "the grants JSON from {source} is {}, not an object: write it as {{\"video\":{{}}}}",
            json_kind(&value)
        )));
    };
    Ok(Grant::list_from_json(&grants)?)
}

/// Builds the grants that the flags ask for, in the order chat, video, voice, sync, TaskRouter.
///
/// # Errors
///
/// Returns the [`MintError`] for a missing or invalid identity when `--device-id` is given, and
/// [`CliError::EndpointId`] when the endpoint id cannot be built.
pub(crate) fn from_flags(args: &MintArgs) -> Result<Vec<Grant>, CliError> {
    let chat = chat_grant(&args.chat, args.identity.as_deref())?;

    let grants = [
        chat.map(Grant::from),
        video_grant(&args.video).map(Grant::from),
        voice_grant(&args.voice).map(Grant::from),
        sync_grant(&args.sync).map(Grant::from),
        task_router_grant(&args.task_router).map(Grant::from),
    ];
    Ok(grants.into_iter().flatten().collect())
}

fn chat_grant(args: &ChatArgs, identity: Option<&str>) -> Result<Option<ChatGrant>, CliError> {
    let requested = args.enabled
        || args.service_sid.is_some()
        || args.endpoint_id.is_some()
        || args.push_credential_sid.is_some()
        || args.deployment_role_sid.is_some()
        || args.device_id.is_some();
    if !requested {
        return Ok(None);
    }

    let mut grant = ChatGrant::new();
    grant.service_sid.clone_from(&args.service_sid);
    grant.endpoint_id = chat_endpoint_id(args, identity)?;
    grant
        .push_credential_sid
        .clone_from(&args.push_credential_sid);
    grant
        .deployment_role_sid
        .clone_from(&args.deployment_role_sid);
    Ok(Some(grant))
}

/// Returns `--chat-endpoint-id`, or the id built from `--app-name`, the identity and
/// `--device-id`. Clap ensures the two ways are not mixed and that both parts are given.
fn chat_endpoint_id(args: &ChatArgs, identity: Option<&str>) -> Result<Option<String>, CliError> {
    let (Some(app), Some(device)) = (&args.app_name, &args.device_id) else {
        return Ok(args.endpoint_id.clone());
    };
    // The identity's own error is clearer than the endpoint id's, so it is checked first.
    let identity = identity.ok_or(MintError::MissingIdentity)?;
    validate_identity(identity).map_err(MintError::from)?;
    Ok(Some(endpoint_id(app, identity, device)?))
}

fn video_grant(args: &VideoArgs) -> Option<VideoGrant> {
    if !args.enabled && args.room.is_none() {
        return None;
    }
    let mut grant = VideoGrant::new();
    grant.room.clone_from(&args.room);
    Some(grant)
}

fn voice_grant(args: &VoiceArgs) -> Option<VoiceGrant> {
    let requested = args.enabled
        || args.incoming
        || args.outgoing_app_sid.is_some()
        || !args.params.is_empty()
        || args.push_credential_sid.is_some()
        || args.endpoint_id.is_some();
    if !requested {
        return None;
    }

    let mut grant = VoiceGrant::new().incoming_allow(args.incoming);
    grant
        .outgoing_application_sid
        .clone_from(&args.outgoing_app_sid);
    for (key, value) in &args.params {
        grant = grant.outgoing_param(key.as_str(), value.as_str());
    }
    grant
        .push_credential_sid
        .clone_from(&args.push_credential_sid);
    grant.endpoint_id.clone_from(&args.endpoint_id);
    Some(grant)
}

fn sync_grant(args: &SyncArgs) -> Option<SyncGrant> {
    if !args.enabled && args.service_sid.is_none() && args.endpoint_id.is_none() {
        return None;
    }
    let mut grant = SyncGrant::new();
    grant.service_sid.clone_from(&args.service_sid);
    grant.endpoint_id.clone_from(&args.endpoint_id);
    Some(grant)
}

fn task_router_grant(args: &TaskRouterArgs) -> Option<TaskRouterGrant> {
    let requested = args.enabled
        || args.workspace_sid.is_some()
        || args.worker_sid.is_some()
        || args.role.is_some();
    if !requested {
        return None;
    }

    let mut grant = TaskRouterGrant::new();
    grant.workspace_sid.clone_from(&args.workspace_sid);
    grant.worker_sid.clone_from(&args.worker_sid);
    grant.role.clone_from(&args.role);
    Some(grant)
}

/// Names a JSON value's type for an error message.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
