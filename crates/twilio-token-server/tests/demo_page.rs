//! The demo page routes: served only when `server.demo_page` is on, with strict headers, and
//! left out of the OpenAPI document. Real HTTP on a loopback socket.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{GeneratedKeys, TestServer, config_text, expect_error, header, state_from};
use serde_json::Value;
use twilio_token_server::config::{self, Environment, apply_demo};
use twilio_token_server::routes::ROUTES;
use twilio_token_server::routes::demo::{CONTENT_SECURITY_POLICY_VALUE, DEMO_ROUTES};

async fn start(server_extra: &str) -> TestServer {
    let keys = GeneratedKeys::new();
    let state = state_from(&config_text(&keys, server_extra));
    TestServer::start_state(keys.keys, state).await
}

/// Reads a file of the repository's `web/` folder, which the binary embeds.
fn web_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../web")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

#[tokio::test]
async fn demo_page_off_by_default() {
    let server = start("").await;

    for (method, path) in DEMO_ROUTES {
        assert_eq!(*method, "GET");
        let response = server
            .client
            .get(server.url(path))
            .send()
            .await
            .expect("GET gets a response");
        expect_error(response, 404, "not_found").await;
    }
    server.stop().await;
}

#[tokio::test]
async fn demo_page_off_when_set_false() {
    let server = start("demo_page = false").await;

    let response = server
        .client
        .get(server.url("/"))
        .send()
        .await
        .expect("GET / gets a response");

    expect_error(response, 404, "not_found").await;
    server.stop().await;
}

#[tokio::test]
async fn demo_files_served_with_strict_headers() {
    let server = start("demo_page = true").await;
    let expected = [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/demo.js", "demo.js", "text/javascript; charset=utf-8"),
        ("/demo.css", "demo.css", "text/css; charset=utf-8"),
        (
            "/token-client.js",
            "token-client.js",
            "text/javascript; charset=utf-8",
        ),
    ];
    assert_eq!(expected.len(), DEMO_ROUTES.len());

    for (path, file, content_type) in expected {
        let response = server
            .client
            .get(server.url(path))
            .send()
            .await
            .expect("GET gets a response");
        let headers = response.headers().clone();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(header(&headers, "content-type"), content_type, "{path}");
        assert_eq!(
            header(&headers, "content-security-policy"),
            CONTENT_SECURITY_POLICY_VALUE,
            "{path}"
        );
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "cache-control"), "no-store");
        assert_eq!(header(&headers, "x-frame-options"), "DENY");
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
        assert_eq!(
            header(&headers, "cross-origin-opener-policy"),
            "same-origin"
        );
        let body = response.text().await.expect("body is text");
        assert_eq!(body, web_file(file), "{path} is the embedded {file}");
    }
    server.stop().await;
}

#[tokio::test]
async fn content_security_policy_blocks_inline_and_foreign() {
    let directives: BTreeSet<&str> = CONTENT_SECURITY_POLICY_VALUE
        .split(';')
        .map(str::trim)
        .collect();

    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(directives.contains(directive), "{directive}");
    }
    assert!(!CONTENT_SECURITY_POLICY_VALUE.contains("unsafe-inline"));
    assert!(!CONTENT_SECURITY_POLICY_VALUE.contains("unsafe-eval"));
}

#[tokio::test]
async fn demo_page_rejects_other_methods() {
    let server = start("demo_page = true").await;

    let response = server
        .client
        .post(server.url("/"))
        .send()
        .await
        .expect("POST / gets a response");

    expect_error(response, 405, "method_not_allowed").await;
    let head = server
        .client
        .head(server.url("/token-client.js"))
        .send()
        .await
        .expect("HEAD gets a response");
    assert_eq!(head.status().as_u16(), 200);
    server.stop().await;
}

#[tokio::test]
async fn openapi_leaves_out_demo_routes() {
    let server = start("demo_page = true").await;

    let document: Value = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json gets a response")
        .json()
        .await
        .expect("the document is JSON");

    let paths: BTreeSet<&str> = document["paths"]
        .as_object()
        .expect("paths is an object")
        .keys()
        .map(String::as_str)
        .collect();
    let api_paths: BTreeSet<&str> = ROUTES.iter().map(|(_, path)| *path).collect();
    assert_eq!(paths, api_paths);
    for (_, path) in DEMO_ROUTES {
        assert!(!paths.contains(path), "{path} is not an API route");
    }
    server.stop().await;
}

#[test]
fn serve_demo_turns_page_on() {
    let mut file = config::FileConfig::default();

    apply_demo(&mut file, &mut Environment::new());

    assert_eq!(file.server.demo_page, Some(true));
}

#[test]
fn serve_demo_keeps_page_off_when_configured() {
    let mut file = config::parse("[server]\ndemo_page = false\n").expect("parses");

    apply_demo(&mut file, &mut Environment::new());

    assert_eq!(file.server.demo_page, Some(false));
}

#[test]
fn demo_page_defaults_to_unset() {
    let file = config::parse("").expect("parses");

    assert_eq!(file.server.demo_page, None);
}
