//! The middleware every request passes through, as one layer: sensitive-header marking, the
//! request id, the request span, the request timeout and `Cache-Control: no-store`.
//!
//! These were six `tower-http` and `tower` layers, each with its own service and future, and
//! the timeout registered a timer with the runtime for every request. In the load benchmark
//! they cost about a fifth of the token route's throughput. This layer does the same work in
//! one future and starts the timer only when the inner service has to wait.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::error::ApiError;

/// The header that carries the request id, in requests and in responses.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds [`Edge`] around a service.
#[derive(Clone)]
pub(crate) struct EdgeLayer {
    ids: SequentialRequestId,
    timeout: Duration,
}

impl EdgeLayer {
    /// Returns the layer with the process's request id generator and the request timeout.
    pub(crate) fn new(timeout: Duration) -> Self {
        EdgeLayer {
            ids: SequentialRequestId::new(),
            timeout,
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            ids: self.ids.clone(),
            timeout: self.timeout,
        }
    }
}

/// For each request, in this order:
///
/// - marks `Authorization` and `Cookie` as sensitive, so that no log prints them;
/// - keeps the client's `X-Request-Id` if it is 1 to 64 letters, digits, `-`, `_` or `.`, and
///   otherwise sets one from the process's generator;
/// - opens a `debug` span with the method, path and request id, and logs the start and the end
///   of the request at `debug`;
/// - returns 503 `unavailable` when the inner service takes longer than the request timeout;
/// - copies the request id to the response, adds `Cache-Control: no-store` unless the response
///   has a `Cache-Control`, and marks `Set-Cookie` as sensitive.
#[derive(Clone)]
pub(crate) struct Edge<S> {
    inner: S,
    ids: SequentialRequestId,
    timeout: Duration,
}

impl<S> Service<Request<Body>> for Edge<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let headers = request.headers_mut();
        mark_sensitive(headers, &AUTHORIZATION);
        mark_sensitive(headers, &COOKIE);
        let id = match headers.get(&REQUEST_ID) {
            Some(value) if usable_request_id(value) => value.clone(),
            _ => {
                let id = self.ids.next();
                headers.insert(REQUEST_ID, id.clone());
                id
            }
        };
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %id.to_str().unwrap_or("-"),
        );
        let inner = {
            let _entered = span.enter();
            tracing::debug!("started processing request");
            self.inner.call(request)
        };
        EdgeFuture {
            inner,
            span,
            id: Some(id),
            started,
            timeout: self.timeout,
            timer: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Edge`].
    pub(crate) struct EdgeFuture<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
        id: Option<HeaderValue>,
        started: Instant,
        timeout: Duration,
        // Created at the first `Pending`, so that a request served in one poll never touches
        // the runtime's timer.
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.enter();
        let response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            Poll::Pending => {
                if this.timer.is_none() {
                    let deadline = *this.started + *this.timeout;
                    this.timer.set(Some(tokio::time::sleep_until(deadline)));
                }
                let Some(timer) = this.timer.as_pin_mut() else {
                    return Poll::Pending;
                };
                if timer.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let seconds = this.timeout.as_secs();
                ApiError::Unavailable {
                    message: format!("the request took longer than {seconds} seconds: try again"),
                }
                .into_response()
            }
        };
        Poll::Ready(Ok(finish(response, this.id.take(), *this.started)))
    }
}

/// Adds the response headers and logs the end of the request.
fn finish(mut response: Response, id: Option<HeaderValue>, started: Instant) -> Response {
    let headers = response.headers_mut();
    if let Some(id) = id
        && !headers.contains_key(&REQUEST_ID)
    {
        headers.insert(REQUEST_ID, id);
    }
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    mark_sensitive(headers, &SET_COOKIE);
    tracing::debug!(
        status = response.status().as_u16(),
        latency = ?started.elapsed(),
        "finished processing request"
    );
    response
}

/// Marks every value of `name` as sensitive.
fn mark_sensitive(headers: &mut HeaderMap, name: &HeaderName) {
    if let axum::http::header::Entry::Occupied(mut entry) = headers.entry(name) {
        for value in entry.iter_mut() {
            value.set_sensitive(true);
        }
    }
}

/// Returns whether a client's request id may be kept: 1 to 64 letters, digits, `-`, `_` or `.`, so
/// that a client cannot write arbitrary text into the logs.
fn usable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(byte))
}

/// Returns the request id the server assigned, or `-` when there is none.
pub(crate) fn request_id(headers: &HeaderMap) -> &str {
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
    /// Returns the process's generator. Routers rebuilt by a configuration reload share it,
    /// so the prefix stays the same and the counter never restarts while the process runs.
    fn new() -> Self {
        static SHARED: std::sync::OnceLock<SequentialRequestId> = std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| SequentialRequestId {
                prefix: rand::random(),
                counter: Arc::new(AtomicU64::new(1)),
            })
            .clone()
    }

    #[cfg(test)]
    fn with(prefix: u32, next: u64) -> Self {
        SequentialRequestId {
            prefix,
            counter: Arc::new(AtomicU64::new(next)),
        }
    }

    /// Returns the next id, `{prefix:08x}-{sequence:x}`.
    fn next(&self) -> HeaderValue {
        let sequence = self.counter.fetch_add(1, Ordering::Relaxed);
        // Written without the formatting machinery, which cost more than the rest of the
        // request id handling.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = [0_u8; 8 + 1 + 16];
        for (index, digit) in id[..8].iter_mut().enumerate() {
            *digit = HEX[(self.prefix >> (28 - 4 * index)) as usize & 0xf];
        }
        id[8] = b'-';
        let digits = (64 - (sequence | 1).leading_zeros()).div_ceil(4) as usize;
        for (index, digit) in id[9..9 + digits].iter_mut().enumerate() {
            *digit = HEX[(sequence >> (4 * (digits - 1 - index))) as usize & 0xf];
        }
        HeaderValue::from_bytes(&id[..9 + digits]).expect("hexadecimal digits and '-'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_prefix_and_counter_in_hex() {
        for (prefix, sequence) in [
            (0_u32, 0_u64),
            (0x1a2b_3c4d, 1),
            (0xffff_ffff, 15),
            (7, 16),
            (0xdead_beef, 0x0123_4567_89ab_cdef),
            (0x8000_0000, u64::MAX),
        ] {
            let ids = SequentialRequestId::with(prefix, sequence);
            assert_eq!(
                ids.next(),
                format!("{prefix:08x}-{sequence:x}").as_str(),
                "{prefix} {sequence}"
            );
        }
        let first = SequentialRequestId::new();
        let again = SequentialRequestId::new();
        assert_eq!(first.prefix, again.prefix, "one prefix per process");
        assert!(Arc::ptr_eq(&first.counter, &again.counter), "one counter");

        let ids = SequentialRequestId::with(1, 41);
        ids.next();
        assert_eq!(ids.next(), "00000001-2a");
    }

    #[test]
    fn request_ids_from_clients_kept_only_when_usable() {
        for usable in ["a", "abc-DEF_1.2", &"x".repeat(64)] {
            assert!(
                usable_request_id(&HeaderValue::from_str(usable).expect("valid value")),
                "{usable}"
            );
        }
        for unusable in ["", "a b", "a/b", "ä", "<script>", &"x".repeat(65)] {
            let value = HeaderValue::from_bytes(unusable.as_bytes()).expect("valid value");
            assert!(!usable_request_id(&value), "{unusable}");
        }
    }

    fn edge<F, Fut>(handler: F) -> Edge<tower::util::ServiceFn<F>>
    where
        F: FnMut(Request<Body>) -> Fut,
        Fut: Future<Output = Result<Response, Infallible>>,
    {
        EdgeLayer::new(Duration::from_secs(5)).layer(tower::service_fn(handler))
    }

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn slow_request_gets_503_with_headers_after_timeout() {
        use tower::ServiceExt as _;
        let started = Instant::now();
        let service = edge(|_| async {
            std::future::pending::<()>().await;
            Ok(Response::new(Body::empty()))
        });
        let response = service
            .oneshot(Request::new(Body::empty()))
            .await
            .expect("infallible");

        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(response.status(), 503);
        assert_eq!(header(&response, "cache-control"), "no-store");
        assert!(!header(&response, "x-request-id").is_empty());
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
        assert_eq!(
            body["error"]["message"],
            "the request took longer than 5 seconds: try again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn wait_under_timeout_succeeds() {
        use tower::ServiceExt as _;
        let service = edge(|_| async {
            tokio::time::sleep(Duration::from_millis(4_900)).await;
            Ok(Response::new(Body::from("done")))
        });
        let response = service
            .oneshot(Request::new(Body::empty()))
            .await
            .expect("infallible");
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "cache-control"), "no-store");
    }

    #[tokio::test]
    async fn credentials_marked_sensitive_both_ways() {
        use tower::ServiceExt as _;
        let service = edge(|request: Request<Body>| async move {
            let headers = request.headers();
            let marked = headers
                .get_all(AUTHORIZATION)
                .iter()
                .all(HeaderValue::is_sensitive)
                && headers
                    .get_all(COOKIE)
                    .iter()
                    .all(HeaderValue::is_sensitive)
                && headers.get_all(COOKIE).iter().count() == 2
                && !headers["accept"].is_sensitive();
            let mut response = Response::new(Body::from(marked.to_string()));
            response
                .headers_mut()
                .insert(SET_COOKIE, HeaderValue::from_static("session=x"));
            response.headers_mut().insert(
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            );
            Ok(response)
        });
        let request = Request::builder()
            .header(AUTHORIZATION, "Bearer secret")
            .header(COOKIE, "a=1")
            .header(COOKIE, "b=2")
            .header("accept", "*/*")
            .body(Body::empty())
            .expect("request");
        let response = service.oneshot(request).await.expect("infallible");

        assert!(response.headers()[SET_COOKIE].is_sensitive());
        // A response's own Cache-Control stays.
        assert_eq!(header(&response, "cache-control"), "public, max-age=60");
        let body = axum::body::to_bytes(response.into_body(), 64)
            .await
            .expect("body");
        assert_eq!(&body[..], b"true", "the request headers were marked");
    }

    #[tokio::test]
    async fn client_request_id_checked() {
        use tower::ServiceExt as _;
        let service = edge(|request: Request<Body>| async move {
            // The inner service gets the same id as the response.
            let seen = request_id(request.headers()).to_owned();
            Ok(Response::new(Body::from(seen)))
        });
        for (sent, kept) in [
            (Some("trace-abc.1"), true),
            (Some("1 path=/admin"), false),
            (Some(""), false),
            (None, false),
        ] {
            let mut request = Request::builder();
            if let Some(sent) = sent {
                request = request.header(REQUEST_ID, sent);
            }
            let request = request.body(Body::empty()).expect("request");
            let response = service.clone().oneshot(request).await.expect("infallible");
            let returned = header(&response, "x-request-id").to_owned();
            let body = axum::body::to_bytes(response.into_body(), 128)
                .await
                .expect("body");
            assert_eq!(body, returned.as_bytes(), "{sent:?}");
            if kept {
                assert_eq!(Some(returned.as_str()), sent);
            } else {
                assert!(
                    returned.len() > 9 && returned.as_bytes()[8] == b'-',
                    "{sent:?}: {returned}"
                );
            }
        }
    }
}
