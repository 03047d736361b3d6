//! Slow and idle clients cannot hold the server: a request head that trickles in is cut
//! at the header-read timeout, an idle connection at the idle timeout, and past the
//! connection cap `/healthz` still answers while other requests get a quick 503. Before,
//! 3,000 half-sent request heads were all still open after 35 s.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://")).await.expect("the server accepts")
}

/// Reads until the server closes the connection (or `within` passes); how long it took.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(within.saturating_sub(started.elapsed()), stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// One request on a fresh connection; the response's status line and the whole answer.
async fn request(app: &TestApp, path: &str) -> String {
    let mut stream = connect(app).await;
    let head =
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {API_KEY}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    answer
}

#[tokio::test]
async fn a_request_head_that_trickles_in_is_cut_at_the_header_read_timeout() {
    let app = spawn_app_with(|vars| {
        vars.insert("HTTP_HEADER_TIMEOUT_SECONDS".into(), "1".into());
        vars.insert("HTTP_IDLE_TIMEOUT_SECONDS".into(), "60".into());
    })
    .await;
    let mut stream = connect(&app).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n").await.unwrap();
    // A byte every 200 ms keeps the connection busy, so only the header timeout can end it.
    let started = Instant::now();
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if stream.write_all(b"X").await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 1024];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "the connection was still open after 5 s of a trickling request head");
    assert!(started.elapsed() < Duration::from_secs(3), "cut after {:?}", started.elapsed());
}

#[tokio::test]
async fn an_idle_connection_is_closed_at_the_idle_timeout() {
    let app = spawn_app_with(|vars| {
        vars.insert("HTTP_HEADER_TIMEOUT_SECONDS".into(), "60".into());
        vars.insert("HTTP_IDLE_TIMEOUT_SECONDS".into(), "1".into());
    })
    .await;
    // Kept alive after a request.
    let mut kept = connect(&app).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 4096];
    let n = kept.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    let closed = closed_within(&mut kept, Duration::from_secs(5)).await;
    assert!(closed.is_some_and(|t| t < Duration::from_secs(3)), "kept-alive connection closed after {closed:?}");
    // Half a request head, then silence.
    let mut half = connect(&app).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
    let closed = closed_within(&mut half, Duration::from_secs(5)).await;
    assert!(closed.is_some_and(|t| t < Duration::from_secs(3)), "half-sent request closed after {closed:?}");
}

#[tokio::test]
async fn at_the_connection_cap_healthz_answers_and_other_requests_get_503() {
    let app = spawn_app_with(|vars| {
        vars.insert("MAX_CONNECTIONS".into(), "3".into());
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&app).await;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: te").await.unwrap();
        held.push(stream);
    }
    // Let the server accept all three before the fourth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = request(&app, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let refused = request(&app, "/users").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    let lower = refused.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/problem+json"), "{refused}");
    assert!(lower.contains("retry-after: 1"), "{refused}");
    drop(held);
    eventually("a freed slot to serve requests again", || async {
        request(&app, "/users").await.starts_with("HTTP/1.1 200")
    })
    .await;
}

/// Before, hyper's own 414 and 431 answers had an empty body.
#[tokio::test]
async fn a_uri_or_head_too_large_is_answered_as_a_problem() {
    let app = spawn_app().await;
    let long_uri = format!("GET /memories?query={} HTTP/1.1\r\nHost: test\r\n\r\n", "x".repeat(70_000));
    let fields: String = (0..150).map(|i| format!("x-field-{i}: value\r\n")).collect();
    let too_many = format!("GET /healthz HTTP/1.1\r\nHost: test\r\n{fields}\r\n");
    for (head, status) in [(long_uri, 414), (too_many, 431)] {
        let mut stream = connect(&app).await;
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.expect("in time").unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: application/problem+json"), "{head}");
        let problem: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(problem["status"], status);
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{problem}");
    }
}
