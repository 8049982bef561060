//! Router construction and the server loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, Request};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::edge::EdgeLayer;
use crate::error::ApiError;
use crate::routes::{demo, health, login, metrics, openapi, token};
use crate::state::AppState;

/// Builds the router with every route and layer. Tests can call it without a socket.
pub fn app(state: Arc<AppState>) -> Router {
    let server = &state.server;
    let mut router = Router::new()
        .route(
            "/token",
            get(token::get_token)
                .post(token::post_token)
                .head(token::method_not_allowed)
                .fallback(token::method_not_allowed),
        )
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

    if server.demo_page == Some(true) {
        router = router.merge(demo::router());
    }

    if !server.allowed_origins.is_empty() {
        router = router.layer(cors_layer(&server.allowed_origins));
    }

    router
        .layer(EdgeLayer::new(Duration::from_secs(
            server.request_timeout_secs,
        )))
        .with_state(state)
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
    /// How long a new connection may stay silent, and how long a client may take to send a
    /// request's headers, including the wait for the next request on a kept-alive HTTP/1.1
    /// connection. Default 10 seconds.
    pub header_read_timeout: Duration,
    /// How many connections are served at once; further ones wait to be accepted. Default
    /// 10,000.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// Returns the limits that the `[server]` section of a configuration sets.
    #[must_use]
    pub fn from_config(server: &crate::config::ServerSection) -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            max_connections: server.max_connections,
        }
    }
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

/// How long a connection accepted just before a stop may take to send its first byte.
const STOP_GRACE: Duration = Duration::from_secs(1);

async fn serve_loop(
    listener: TcpListener,
    routers: Routers,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    // Connections whose first request arrives after the stop get one response, then close.
    let mut closing_builder = builder.clone();
    closing_builder.http1().keep_alive(false);
    let builder = Arc::new(builder);
    let closing_builder = Arc::new(closing_builder);
    // Tells connections that the server is stopping. Every connection task keeps a receiver,
    // so the sender also learns when the last of them has finished.
    let (stopping, stop_receiver) = tokio::sync::watch::channel(false);

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
        let builder = Arc::clone(&builder);
        let closing_builder = Arc::clone(&closing_builder);
        let mut stop = stop_receiver.clone();
        let first_byte_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            // hyper's header timer starts with the first byte, so a client that connects and
            // sends nothing would hold its permit forever without this wait.
            let mut byte = [0_u8; 1];
            let first_byte = tokio::time::timeout(first_byte_timeout, stream.peek(&mut byte));
            let stopped_first = tokio::select! {
                waited = first_byte => {
                    if !matches!(waited, Ok(Ok(1))) {
                        return;
                    }
                    false
                }
                _ = stop.wait_for(|stopping| *stopping) => true,
            };
            if stopped_first {
                // The client was accepted before the stop and is most likely writing its
                // request right now: give it a moment, respond, and close.
                let grace = first_byte_timeout.min(STOP_GRACE);
                let waited = tokio::time::timeout(grace, stream.peek(&mut byte)).await;
                if matches!(waited, Ok(Ok(1))) {
                    // A client that drops the connection or sends garbage is not a server error.
                    let _ = closing_builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), hyper_service)
                        .await;
                }
                drop(permit);
                return;
            }
            let connection =
                builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_service);
            let mut connection = std::pin::pin!(connection);
            // The connection is polled before the stop is checked, so a request that has
            // arrived is read before the graceful shutdown begins. A shutdown that started
            // before the first read would drop the request without a response.
            tokio::select! {
                biased;
                _ = connection.as_mut() => {}
                () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(permit);
        });
    }

    let _ = stopping.send(true);
    drop(listener);
    drop(stop_receiver);
    stopping.closed().await;
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
