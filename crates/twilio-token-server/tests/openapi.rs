//! The OpenAPI document and the router agree with `routes::ROUTES`, checked in process without
//! a socket.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;
use twilio_token_server::app;
use twilio_token_server::routes::ROUTES;

/// The HTTP methods an OpenAPI path item can describe, by their key in the document.
const OPENAPI_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn router() -> Router {
    let keys = common::GeneratedKeys::new();
    app(Arc::new(common::standard_state(&keys)))
}

async fn send(router: Router, method: &str, path: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .expect("request builds");
    let response = router.oneshot(request).await.expect("router is infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body is readable");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

async fn document() -> Value {
    let (status, body) = send(router(), "GET", "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    body
}

fn documented_routes(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths is an object");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().expect("path item is an object");
        for method in OPENAPI_METHODS {
            if item.contains_key(method) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

fn declared_routes() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect()
}

#[tokio::test]
async fn openapi_version_is_3_1() {
    let document = document().await;

    let version = document["openapi"].as_str().expect("openapi is a string");
    assert!(version.starts_with("3.1"), "openapi {version}");
    assert!(document["info"]["title"].is_string());
    assert!(document["info"]["version"].is_string());
}

#[tokio::test]
async fn openapi_paths_equal_routes() {
    let document = document().await;

    assert_eq!(
        declared_routes().len(),
        ROUTES.len(),
        "ROUTES has no duplicates"
    );
    assert_eq!(documented_routes(&document), declared_routes());
}

#[tokio::test]
async fn every_route_is_served() {
    for (method, path) in ROUTES {
        let (status, body) = send(router(), method, path).await;

        assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
    }
}

#[tokio::test]
async fn unlisted_methods_are_not_allowed() {
    let declared = declared_routes();
    let paths: BTreeSet<&str> = ROUTES.iter().map(|(_, path)| *path).collect();

    for path in paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if declared.contains(&(method.to_string(), path.to_owned())) {
                continue;
            }
            let (status, body) = send(router(), method.as_str(), path).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(
                body["error"]["code"], "method_not_allowed",
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn token_responses_documented() {
    let document = document().await;

    let documented = |method: &str| -> BTreeSet<String> {
        document["paths"]["/token"][method]["responses"]
            .as_object()
            .expect("responses is an object")
            .keys()
            .cloned()
            .collect()
    };
    let statuses = |list: &[&str]| -> BTreeSet<String> {
        list.iter().map(|status| (*status).to_owned()).collect()
    };
    assert_eq!(
        documented("get"),
        statuses(&["200", "400", "401", "403", "429", "503"])
    );
    assert_eq!(
        documented("post"),
        statuses(&[
            "200", "400", "401", "403", "408", "413", "415", "429", "503"
        ])
    );
}

#[tokio::test]
async fn request_schema_lists_request_fields() {
    let document = document().await;

    let schema = &document["components"]["schemas"]["TokenRequest"];
    let mut fields: Vec<&str> = schema["properties"]
        .as_object()
        .expect("TokenRequest has properties")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["device_id", "grants", "identity", "room", "ttl"]);
    assert_eq!(
        schema["additionalProperties"],
        Value::Bool(false),
        "the server rejects unknown fields, so the schema does too"
    );
}
