//! An existing axum application that hands Twilio Access Tokens to its own signed-in users.
//!
//! The application already knows who is signed in: here a made-up session header, `x-session`,
//! takes the place of its cookie or session middleware. That middleware puts a
//! [`Principal`] into the request's extensions, and the token router, mounted under `/twilio`
//! with [`ExtensionProvider`] as its only authentication provider, mints tokens for that
//! identity under the policy below. API keys and the built-in user store are off.
//!
//! Run it, then ask for a token as the demo user `user-alice`:
//!
//! ```text
//! cargo run -p twilio-token-server --example embed            # listens on 127.0.0.1:3000
//! curl -s -X POST http://127.0.0.1:3000/twilio/token \
//!     -H 'x-session: demo-alice' -H 'content-type: application/json' -d '{}'
//! ```
//!
//! The first argument sets another port. Without `TWILIO_API_SECRET` in the environment the
//! tokens are signed with a placeholder secret, so Twilio rejects them. Set the usual
//! `TWILIO_ACCOUNT_SID`, `TWILIO_API_KEY`, `TWILIO_API_SECRET` and `TWILIO_CHAT_SERVICE_SID` to
//! get tokens for a real account.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use twilio_token_server::auth::extension::ExtensionProvider;
use twilio_token_server::auth::{AuthProvider, Principal};
use twilio_token_server::config::{self, ConfigError, Environment};
use twilio_token_server::{AppState, run, shutdown_signal};

/// The placeholder account SID; `TWILIO_ACCOUNT_SID` replaces it.
pub(crate) const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// The placeholder API key SID; `TWILIO_API_KEY` replaces it.
pub(crate) const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
/// The placeholder Conversations service SID; `TWILIO_CHAT_SERVICE_SID` replaces it.
pub(crate) const CHAT_SERVICE_SID: &str = "IS00000000000000000000000000000001";
/// The header the demo application reads its session id from.
pub(crate) const SESSION_HEADER: &str = "x-session";

/// The demo application's sessions: session id, user id, groups.
const SESSIONS: [(&str, &str, &[&str]); 2] = [
    ("demo-alice", "user-alice", &[]),
    ("demo-bob", "user-bob", &["support"]),
];

/// Returns the token server's configuration: one profile, no API keys, a policy under which
/// every user gets Chat for an hour and the `support` group gets Video as well, and the audit
/// log as JSON lines on stdout.
fn config_text() -> String {
    format!(
        r#"
[auth]
order = []

# Without this section the audit log would be a SQLite file under ./twilio-token-data.
[audit]
sink = "stdout"

[[profiles]]
name = "default"
account_sid = "{ACCOUNT_SID}"
chat_service_sid = "{CHAT_SERVICE_SID}"

[[profiles.api_keys]]
sid = "{API_KEY_SID}"
secret_env = "TWILIO_API_SECRET"

[[policy.rules]]
groups = ["support"]
[policy.rules.grants.chat]
[policy.rules.grants.video]

[[policy.rules]]
identities = ["user-*"]
ttl = 3600
[policy.rules.grants.chat]
"#
    )
}

/// Builds the token server's state from [`config_text`] and the Twilio variables in `environment`,
/// with the embedding application as the only authentication provider.
///
/// # Errors
///
/// Returns the [`ConfigError`] of an invalid Twilio variable or a missing secret.
pub(crate) fn token_state(environment: &Environment) -> Result<AppState, ConfigError> {
    let mut file = config::parse(&config_text())?;
    config::apply_environment(&mut file, environment);

    let mut state = AppState::from_config(&file, environment, Path::new("."))?;
    let providers: Vec<Arc<dyn AuthProvider>> = vec![Arc::new(ExtensionProvider)];
    state.providers = providers;
    Ok(state)
}

/// Builds the application: its own routes, the token routes under `/twilio`, and its session
/// middleware in front of both.
pub(crate) fn embedding_app(state: AppState) -> Router {
    Router::new()
        .route("/", get(home))
        .nest("/twilio", twilio_token_server::app(Arc::new(state)))
        .layer(middleware::from_fn(session_auth))
}

/// Looks up the session the request names and, when it is valid, records who is signed in
/// as a [`Principal`]. Requests without a valid session go on without one, so the token
/// route returns 401.
async fn session_auth(mut request: Request, next: Next) -> Response {
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|value| value.to_str().ok());
    if let Some(principal) = session.and_then(principal_for_session) {
        request.extensions_mut().insert(principal);
    }
    next.run(request).await
}

fn principal_for_session(session: &str) -> Option<Principal> {
    let (_, user, groups) = SESSIONS.iter().find(|(id, _, _)| *id == session)?;
    Some(Principal {
        identity: Some((*user).to_owned()),
        groups: groups.iter().map(|group| (*group).to_owned()).collect(),
        method: "app_session",
        subject: (*user).to_owned(),
        may_act_for: None,
    })
}

async fn home() -> &'static str {
    "demo app: POST /twilio/token with an x-session header for a Twilio Access Token\n"
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let port = match std::env::args().nth(1).map(|text| text.parse::<u16>()) {
        None => 3000,
        Some(Ok(port)) => port,
        Some(Err(error)) => {
            tracing::error!(%error, "the first argument must be a port number");
            return ExitCode::from(2);
        }
    };

    let mut environment = config::process_environment();
    if !environment.contains_key("TWILIO_API_SECRET") {
        tracing::warn!(
            "TWILIO_API_SECRET is not set: signing with a placeholder secret, so Twilio rejects \
             these tokens"
        );
        environment.insert(
            "TWILIO_API_SECRET".to_owned(),
            "placeholder-secret-twilio-rejects".to_owned(),
        );
    }
    let state = match token_state(&environment) {
        Ok(state) => state,
        Err(error) => {
            tracing::error!(%error, "invalid token server configuration");
            return ExitCode::from(2);
        }
    };

    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = match TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, %address, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%address, "demo app listening; tokens at /twilio/token");
    if let Err(error) = run(listener, embedding_app(state), shutdown_signal()).await {
        tracing::error!(%error, "server failed");
        return ExitCode::FAILURE;
    }
    tracing::info!("demo app stopped");
    ExitCode::SUCCESS
}
