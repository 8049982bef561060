//! The server under load in `scripts/bench/server/run.sh`.
//!
//! ```text
//! BENCH_API_KEY=ttk_… cargo run --release -p twilio-token-server --example bench_server -- --port 8081
//! cargo run --release -p twilio-token-server --example bench_server -- --port 8082 --bare
//! ```
//!
//! Without `--bare` it serves the full token server ([`twilio_token_server::app`]) with one API
//! key, the one in `BENCH_API_KEY`, whose identity `bench-user` gets a Chat grant for an hour.
//! With `--bare` it serves only `POST /token` on a plain axum router, which mints one fixed Chat
//! token built once at start-up and returns `{"identity", "token"}`: no authentication, no
//! policy, no middleware. The difference between the two is the cost of everything but minting.
//!
//! The full server writes no audit log unless `--audit-sqlite FILE`, `--audit-sqlite-normal FILE`
//! (with `synchronous = "normal"`) or `--audit-postgres` is given. `--audit-postgres` takes the
//! connection string from `BENCH_AUDIT_URL`, so a password never appears in the process list.
//!
//! With `--limits memory` or `--limits redis://HOST:PORT/0` the full server also checks rate
//! limits per identity and per client, in process or in Redis, with a budget the load never
//! uses up.
//!
//! With `--oidc ISSUER` the full token server also accepts OpenID Connect bearer tokens from
//! `ISSUER` (audience `urn:twilio-token`), with the `oidc` provider after `api_key` as in a
//! deployment that has both; the JWKS is loaded by discovery on first use and cached. The
//! verified-token cache is on, as by default; `--oidc-verify-each` turns it off, so every request
//! checks the RS256 signature. `scripts/bench/server/oidc.sh` runs these against `oidc-provider`.
//!
//! Both listen on 127.0.0.1 only and stop on SIGINT or SIGTERM. Logs go to stderr through a
//! `tracing-subscriber` fmt layer filtered by `RUST_LOG` (default `info`), as a deployment
//! would run. The SIDs and the Twilio secret are fake placeholders.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;

/// The allocator of the `twilio-token` binary, so that the benchmark measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use twilio_access_token::{AccessToken, ChatGrant, Clock, SystemClock};
use twilio_token_server::auth::api_key::{KEY_PREFIX, hash_key};
use twilio_token_server::config::{self, Environment};
use twilio_token_server::{AppState, run, shutdown_signal};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const CHAT_SERVICE_SID: &str = "IS00000000000000000000000000000001";
/// A fake Twilio API key secret; the bench needs no real account.
const FAKE_SECRET: &str = "FAKEsecretDoNotUse0123456789abcd";
const IDENTITY: &str = "bench-user";
/// Limits with a budget far above what the load test sends.
const LIMITS: &str = "[rate_limit]\nper_identity = { burst = 1000000, per_minute = 6000000 }\n\
                      per_client = { burst = 1000000, per_minute = 6000000 }\n";

struct Options {
    port: u16,
    bare: bool,
    /// The `[audit]` section of the full server.
    audit: String,
    /// `--limits memory` or `--limits redis://…`: rate limits per identity and per client with
    /// a budget the load never exhausts, so every request pays for the checks and none is
    /// refused.
    limits: Option<String>,
    /// `--oidc ISSUER`: also accept OpenID Connect bearer tokens from this issuer.
    oidc_issuer: Option<String>,
    /// `--oidc-verify-each`: check the signature of every OIDC token, without the cache.
    oidc_verify_each: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        port: 8081,
        bare: false,
        audit: "sink = \"off\"".to_owned(),
        limits: None,
        oidc_issuer: None,
        oidc_verify_each: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bare" => options.bare = true,
            "--audit-sqlite" => {
                let path = args.next().ok_or("--audit-sqlite needs a file")?;
                options.audit = format!("sink = \"sqlite\"\npath = {path:?}");
            }
            "--audit-sqlite-normal" => {
                let path = args.next().ok_or("--audit-sqlite-normal needs a file")?;
                options.audit =
                    format!("sink = \"sqlite\"\npath = {path:?}\nsynchronous = \"normal\"");
            }
            "--audit-postgres" => {
                let url = std::env::var("BENCH_AUDIT_URL")
                    .map_err(|_| "--audit-postgres needs BENCH_AUDIT_URL")?;
                options.audit = format!("sink = \"postgres\"\nurl = {url:?}");
            }
            "--limits" => {
                options.limits = Some(args.next().ok_or("--limits needs memory or a Redis URL")?);
            }
            "--oidc" => {
                options.oidc_issuer = Some(args.next().ok_or("--oidc needs an issuer URL")?)
            }
            "--oidc-verify-each" => options.oidc_verify_each = true,
            "--port" => {
                let value = args.next().ok_or("--port needs a port number")?;
                options.port = value
                    .parse()
                    .map_err(|_| format!("--port {value:?} is not a port number"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}: use --port N, --bare, --audit-sqlite FILE, \
                     --audit-sqlite-normal FILE, --audit-postgres, --limits memory|URL, \
                     --oidc ISSUER and --oidc-verify-each"
                ));
            }
        }
    }
    Ok(options)
}

/// Builds the full token server's state: one API key (stored as its hash), the OIDC issuer
/// when given, and one Chat rule, with the audit log and rate limits the options ask for.
fn token_state(api_key: &str, options: &Options) -> Result<AppState, String> {
    let audit = &options.audit;
    let limits = match options.limits.as_deref() {
        None => String::new(),
        Some("memory") => LIMITS.to_owned(),
        Some(url) => format!("{LIMITS}store = \"redis\"\nredis_url = \"{url}\"\n"),
    };
    let oidc = match &options.oidc_issuer {
        None => String::new(),
        Some(issuer) => format!(
            r#"
[auth.oidc]
verified_cache_secs = {cache}

[[auth.oidc.issuers]]
issuer = "{issuer}"
audiences = ["urn:twilio-token"]
"#,
            cache = if options.oidc_verify_each { 0 } else { 60 }
        ),
    };
    let order = if options.oidc_issuer.is_some() {
        r#"["api_key", "oidc"]"#
    } else {
        r#"["api_key"]"#
    };
    let text = format!(
        r#"
[auth]
order = {order}
{oidc}

[[auth.api_keys]]
name = "bench"
hash = "{hash}"
identity = "{IDENTITY}"

[[profiles]]
name = "default"
account_sid = "{ACCOUNT_SID}"
chat_service_sid = "{CHAT_SERVICE_SID}"

[[profiles.api_keys]]
sid = "{API_KEY_SID}"
secret_env = "BENCH_TWILIO_SECRET"

[[policy.rules]]
identities = ["bench-*"]
ttl = 3600
[policy.rules.grants.chat]

[audit]
{audit}

{limits}
"#,
        hash = hash_key(api_key)
    );
    let file = config::parse(&text).map_err(|error| error.to_string())?;
    let environment =
        Environment::from([("BENCH_TWILIO_SECRET".to_owned(), FAKE_SECRET.to_owned())]);
    let state = AppState::from_config(&file, &environment, Path::new("."))
        .map_err(|error| error.to_string())?;
    state.audit.start().map_err(|error| error.to_string())?;
    Ok(state)
}

#[derive(Serialize)]
struct BareResponse {
    identity: &'static str,
    token: String,
}

/// Mints the prebuilt token at the current time: the least a token route can do.
async fn bare_token(
    State(token): State<Arc<AccessToken>>,
) -> Result<Json<BareResponse>, StatusCode> {
    let now = SystemClock.now().ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
    let jwt = token
        .to_jwt_at(now)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(Json(BareResponse {
        identity: IDENTITY,
        token: jwt,
    }))
}

fn bare_router() -> Result<Router, String> {
    let token = AccessToken::builder()
        .account_sid(ACCOUNT_SID)
        .api_key_sid(API_KEY_SID)
        .api_secret(FAKE_SECRET)
        .identity(IDENTITY)
        .ttl_secs(3600)
        .grant(ChatGrant::new().service_sid(CHAT_SERVICE_SID))
        .build()
        .map_err(|error| error.to_string())?;
    Ok(Router::new()
        .route("/token", post(bare_token))
        .with_state(Arc::new(token)))
}

fn router(options: &Options) -> Result<Router, String> {
    if options.bare {
        return bare_router();
    }
    let api_key = std::env::var("BENCH_API_KEY")
        .ok()
        .filter(|key| key.starts_with(KEY_PREFIX))
        .ok_or("BENCH_API_KEY must hold an API key starting with ttk_")?;
    Ok(twilio_token_server::app(Arc::new(token_state(
        &api_key, options,
    )?)))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            tracing::error!("{message}");
            return ExitCode::from(2);
        }
    };
    let router = match router(&options) {
        Ok(router) => router,
        Err(message) => {
            tracing::error!("{message}");
            return ExitCode::from(2);
        }
    };

    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    let listener = match TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, %address, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%address, bare = options.bare, "bench server listening");
    if let Err(error) = run(listener, router, shutdown_signal()).await {
        tracing::error!(%error, "server failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
