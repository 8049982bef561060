//! HTTP routes.

pub mod demo;
pub mod health;
pub mod login;
pub mod metrics;
pub mod openapi;
pub mod token;

/// Every API route the router serves, as (method, path). The OpenAPI document must list exactly
/// these, which a test checks. The demo page's routes are in [`demo::DEMO_ROUTES`].
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/token"),
    ("POST", "/token"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/metrics"),
];
