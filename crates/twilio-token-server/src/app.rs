//! Router construction and the server loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use axum::BoxError;
use axum::error_handling::HandleErrorLayer;
use tower::util::MapRequestLayer;

use crate::error::ApiError;
use crate::routes::{health, login, metrics, openapi, token};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the router with every route and layer. Tests can call it without a socket.
pub fn app(state: Arc<AppState>) -> Router {
    let server = &state.server;
    let timeout_secs = server.request_timeout_secs;
    let mut router = Router::new()
        .route("/token", get(token::get_token).post(token::post_token))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/login", post(login::post_login))
        .route("/logout", post(login::post_logout));
    if state.metrics_config.enabled && state.metrics_config.listen.is_none() {
        router = router.route("/metrics", get(metrics::metrics));
    }
    router = router
        .fallback(|| async { ApiError::NotFound.into_response() })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed.into_response() });

    if !server.allowed_origins.is_empty() {
        router = router.layer(cors_layer(&server.allowed_origins));
    }

    // One stack, outermost first, so each request clones the middleware once.
    let middleware = tower::ServiceBuilder::new()
        .layer(SetSensitiveHeadersLayer::new([
            AUTHORIZATION,
            COOKIE,
            SET_COOKIE,
        ]))
        .layer(MapRequestLayer::new(drop_unusable_request_id))
        .layer(SetRequestIdLayer::new(
            REQUEST_ID,
            SequentialRequestId::new(),
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // Outside the timeout, so that its 503 response is marked no-store too.
        .layer(SetResponseHeaderLayer::if_not_present(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(HandleErrorLayer::new(move |_: BoxError| async move {
            ApiError::Unavailable {
                message: format!("the request took longer than {timeout_secs} seconds: try again"),
            }
            .into_response()
        }))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(
            timeout_secs,
        )));

    router.layer(middleware).with_state(state)
}

/// Opens the span of one request. It is a debug span, because span bookkeeping at info cost
/// about 12k of 66k requests per second in the load benchmark. The token handler adds the
/// request id to the events it logs.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id(request.headers()),
    )
}

/// Removes a client's `X-Request-Id` unless it is 1 to 64 letters, digits, `-`, `_` or `.`, so
/// that a client cannot write arbitrary text into the logs. The server then assigns its own.
fn drop_unusable_request_id<B>(mut request: Request<B>) -> Request<B> {
    let usable = request.headers().get(&REQUEST_ID).is_some_and(|value| {
        let bytes = value.as_bytes();
        (1..=64).contains(&bytes.len())
            && bytes
                .iter()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(byte))
    });
    if !usable {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// Returns the request id the server assigned, or `-` when there is none.
pub(crate) fn request_id(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
}

/// Request ids made of a random per-process prefix and a counter: unique across replicas with
/// high probability, and without a system call per request.
#[derive(Clone)]
struct SequentialRequestId {
    prefix: u32,
    counter: Arc<AtomicU64>,
}

impl SequentialRequestId {
    fn new() -> Self {
        SequentialRequestId {
            prefix: rand::random(),
            counter: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for SequentialRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let sequence = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}-{sequence:x}", self.prefix);
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .max_age(Duration::from_secs(600))
}

/// Limits on client connections, against clients that open many connections and send slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request's headers, including the wait for the next
    /// request on a kept-alive HTTP/1.1 connection. Default 10 seconds.
    pub header_read_timeout: Duration,
    /// How many connections are served at once; further ones wait to be accepted. Default
    /// 10,000.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

/// Serves `router` on `listener` with the default [`ConnectionLimits`] until `shutdown`
/// completes, then lets requests in flight finish.
///
/// # Errors
///
/// Returns the I/O error that stopped the server.
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with_limits(listener, router, shutdown, ConnectionLimits::default()).await
}

/// Serves `router` like [`run`], with the given connection limits.
///
/// # Errors
///
/// Returns the I/O error that stopped the server. Errors accepting one connection are logged
/// and the server goes on.
pub async fn run_with_limits(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    serve_loop(listener, Routers::Fixed(router), shutdown, limits).await
}

/// Serves like [`run_with_limits`], taking the router of each request from `routers`, so that a
/// configuration reload (see [`crate::reload`]) applies to the next request, on open
/// connections too, without dropping any.
///
/// # Errors
///
/// As [`run_with_limits`].
pub async fn run_reloadable(
    listener: TcpListener,
    routers: Arc<arc_swap::ArcSwap<Router>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    serve_loop(listener, Routers::Swappable(routers), shutdown, limits).await
}

/// Where each request's router comes from.
#[derive(Clone)]
enum Routers {
    Fixed(Router),
    Swappable(Arc<arc_swap::ArcSwap<Router>>),
}

impl Routers {
    fn current(&self) -> Router {
        match self {
            Routers::Fixed(router) => router.clone(),
            Routers::Swappable(routers) => Router::clone(&routers.load()),
        }
    }
}

async fn serve_loop(
    listener: TcpListener,
    routers: Routers,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: wait a little instead of spinning.
                    tracing::warn!(%error, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);

        let routers = routers.clone();
        let hyper_service =
            hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                routers
                    .current()
                    .oneshot(request.map(axum::body::Body::new))
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), hyper_service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that drops the connection or sends garbage is not a server error.
            let _ = connection.await;
            drop(permit);
        });
    }

    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
