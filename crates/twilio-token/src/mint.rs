//! `twilio-token mint`: builds, signs and prints an Access Token.

use serde_json::{Map, Value, json};
use twilio_access_token::{AccessToken, Clock as _, Grant, MintError, SystemClock, Ttl};

use crate::cli::MintArgs;
use crate::credentials::{self, Credentials, Env};
use crate::error::CliError;
use crate::grants;
use crate::input::Source;

/// Mints the token that `args` describe and returns the text to print.
///
/// # Errors
///
/// Returns the first problem with the credentials, the grants, the lifetime or the token.
pub(crate) fn run(args: &MintArgs) -> Result<String, CliError> {
    mint(args, &|name| std::env::var_os(name))
}

fn mint(args: &MintArgs, env: Env<'_>) -> Result<String, CliError> {
    check_one_stdin_reader(args)?;
    let credentials = credentials::resolve(args, env)?;
    let grants = collect_grants(args)?;
    let region = match &args.region {
        Some(region) => Some(region.clone()),
        None => credentials::env_value(env, "TWILIO_REGION")?,
    };

    let token = build(args, credentials, region, grants)?;
    let issued_at = match args.issued_at {
        Some(issued_at) => issued_at,
        None => SystemClock.now().ok_or(MintError::ClockBeforeEpoch)?,
    };
    let jwt = token.to_jwt_at(issued_at)?;

    if args.json {
        Ok(render_json(&token, &jwt, issued_at))
    } else {
        Ok(format!("{jwt}\n"))
    }
}

/// Rejects `-` for both the secret and the grants, since stdin can be read only once.
fn check_one_stdin_reader(args: &MintArgs) -> Result<(), CliError> {
    let secret = Source::from_optional_arg(args.api_secret_file.as_ref());
    let grants = Source::from_optional_arg(args.grants_json.as_ref());
    if secret == Some(Source::Stdin) && grants == Some(Source::Stdin) {
        return Err(CliError::Input(
            "--api-secret-file and --grants-json cannot both read stdin: put one of them in a \
             file"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Returns the grants from `--grants-json` in their order, then those from flags. A flag-built
/// grant replaces one of the same type from the JSON in its place, because the builder does.
fn collect_grants(args: &MintArgs) -> Result<Vec<Grant>, CliError> {
    let mut collected = match Source::from_optional_arg(args.grants_json.as_ref()) {
        Some(source) => grants::from_json(&source)?,
        None => Vec::new(),
    };
    collected.extend(grants::from_flags(args)?);
    Ok(collected)
}

fn build(
    args: &MintArgs,
    credentials: Credentials,
    region: Option<String>,
    grants: Vec<Grant>,
) -> Result<AccessToken, CliError> {
    let mut builder = AccessToken::builder()
        .account_sid(credentials.account_sid)
        .api_key_sid(credentials.api_key_sid)
        .api_secret(credentials.api_secret);

    if let Some(identity) = &args.identity {
        builder = builder.identity(identity.as_str());
    }
    if let Some(ttl) = &args.ttl {
        builder = builder.ttl(ttl.parse::<Ttl>()?);
    }
    if let Some(nbf) = args.nbf {
        builder = builder.nbf(nbf);
    }
    if let Some(region) = region {
        builder = builder.region(region);
    }
    for grant in grants {
        builder = builder.grant(grant);
    }

    Ok(builder.build()?)
}

/// Writes the `--json` object: the token with its identity, times, region and grants.
fn render_json(token: &AccessToken, jwt: &str, issued_at: u64) -> String {
    let ttl = token.ttl().as_secs();
    let mut object = Map::new();
    object.insert("token".into(), json!(jwt));
    object.insert("identity".into(), json!(token.identity()));
    object.insert("iat".into(), json!(issued_at));
    object.insert("exp".into(), json!(issued_at.saturating_add(ttl)));
    if let Some(nbf) = token.nbf() {
        object.insert("nbf".into(), json!(nbf));
    }
    object.insert("ttl".into(), json!(ttl));
    if let Some(region) = token.region() {
        object.insert("region".into(), json!(region));
    }
    let grants: Map<String, Value> = token
        .grants()
        .iter()
        .map(|grant| (grant.key().to_owned(), grant.to_json()))
        .collect();
    object.insert("grants".into(), Value::Object(grants));

    format!("{:#}\n", Value::Object(object))
}
