//! Connection limits: slow headers and idle connections are closed, and at most
//! `max_connections` are served at once. Also what a stop does to connections that are open.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use twilio_token_server::{ConnectionLimits, app, run_with_limits};

const LIMITS: ConnectionLimits = ConnectionLimits {
    header_read_timeout: Duration::from_secs(1),
    max_connections: 2,
};

async fn start() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (address, stop, _server) = start_with_handle().await;
    (address, stop)
}

async fn start_with_handle() -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let keys = common::GeneratedKeys::new();
    let state = common::standard_state(&keys);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let server = tokio::spawn(run_with_limits(
        listener,
        app(Arc::new(state)),
        shutdown,
        LIMITS,
    ));
    (address, stop, server)
}

/// Reads until the server closes the connection, or fails after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.is_ok()
}

#[tokio::test]
async fn slow_headers_connection_closed() {
    let (address, _stop) = start().await;
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial headers");

    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn silent_connection_closed_and_frees_its_place() {
    let (address, _stop) = start().await;
    // Two clients that connect and send nothing take both places, for one second only.
    let mut silent = [
        TcpStream::connect(address).await.expect("connect"),
        TcpStream::connect(address).await.expect("connect"),
    ];
    for stream in &mut silent {
        assert!(closed_within(stream, Duration::from_secs(5)).await);
    }

    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response));
    read.await
        .expect("answered in time")
        .expect("response read");
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
}

#[tokio::test]
async fn idle_connection_closed() {
    let (address, _stop) = start().await;
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");

    // The response arrives, then the kept-alive connection is closed for idling.
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn connections_over_limit_wait() {
    let (address, _stop) = start().await;
    let mut first = TcpStream::connect(address).await.expect("connect");
    let mut second = TcpStream::connect(address).await.expect("connect");
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial");
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The third connection is accepted by the kernel but not served while two are open.
    let mut third = TcpStream::connect(address).await.expect("connect");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut buffer = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "the third connection was served while two were open"
    );

    // Once the slow ones time out, the third is served.
    let served = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buffer)).await;
    let read = served
        .expect("served after the others closed")
        .expect("read");
    assert!(
        buffer[..read].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &buffer[..read]
    );
}

#[tokio::test]
async fn connection_accepted_before_stop_gets_response_then_closed() {
    let (address, stop, server) = start_with_handle().await;
    let mut stream = TcpStream::connect(address).await.expect("connect");
    // Accepted, but the request comes only after the stop has begun.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).expect("server running");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");

    // A response, and then the connection closes although the request asked for keep-alive.
    let mut response = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response));
    read.await
        .expect("response and close in time")
        .expect("response read");
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("connection: close\r\n"),
        "{response}"
    );
    let finished = tokio::time::timeout(Duration::from_secs(5), server).await;
    finished
        .expect("stopped")
        .expect("joined")
        .expect("no error");
}

#[tokio::test]
async fn silent_connection_delays_stop_by_grace_only() {
    let (address, stop, server) = start_with_handle().await;
    let mut silent = TcpStream::connect(address).await.expect("connect");
    let mut kept_alive = TcpStream::connect(address).await.expect("connect");
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut buffer = [0u8; 512];
    let read = kept_alive.read(&mut buffer).await.expect("response");
    assert!(buffer[..read].starts_with(b"HTTP/1.1 200 "));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = std::time::Instant::now();
    stop.send(()).expect("server running");
    // The idle kept-alive connection is closed at once.
    assert!(closed_within(&mut kept_alive, Duration::from_millis(500)).await);
    // The silent one is given the grace (here the 1 s header timeout), then closed.
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
    let finished = tokio::time::timeout(Duration::from_secs(3), server).await;
    finished
        .expect("stopped")
        .expect("joined")
        .expect("no error");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}
