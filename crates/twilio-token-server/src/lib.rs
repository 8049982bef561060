//! The twilio-token server as a library: an axum [`Router`](axum::Router) that hands Twilio
//! Access Tokens to authenticated callers, with configuration, authentication providers and
//! policy.
//!
//! Build an [`AppState`] from a configuration, then [`app`] for the router and [`run`] to serve
//! it. To mount the token route inside an existing axum application whose own authentication
//! decides who the user is, use [`auth::extension::ExtensionProvider`] and insert a
//! [`auth::Principal`] into each request's extensions.

pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
mod edge;
pub mod error;
pub mod error_schema;
mod guard;
pub mod issue;
pub mod metrics;
mod network;
pub mod pattern;
pub mod policy;
pub mod rate_limit;
mod redis_conn;
pub mod reload;
pub mod revocation;
pub mod routes;
mod sqlite;
pub mod state;

pub use app::{ConnectionLimits, app, run, run_reloadable, run_with_limits, shutdown_signal};
pub use error::ApiError;
pub use state::AppState;
