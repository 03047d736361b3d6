//! The HTTP server loop: hyper's connections with the limits poem's `Server` does not
//! expose, so slow and idle clients cannot hold the server's file descriptors.
//!
//! - **Header-read timeout**: hyper's own (`http1::Builder::header_read_timeout`, which
//!   needs a timer poem does not give it): a request head must arrive in time however
//!   slowly its bytes trickle in.
//! - **Idle timeout**: a connection with no request running and no byte read or written
//!   for the configured time is closed (hyper has no keep-alive timeout of its own).
//! - **Connection cap**: past `MAX_CONNECTIONS`, a connection is still accepted but
//!   served one request on a short leash: `/healthz` answers as usual, anything else gets
//!   a 503 problem with `Retry-After`. Past that small overflow too, it is closed at once,
//!   so the process never runs out of file descriptors.
//!
//! Hand-written around hyper-util's `auto::Builder` because poem's `Server` builds its
//! hyper connection internally without a timer or a cap (poem 3.1).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use poem::http::{header, uri::Scheme, StatusCode};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::problem::Problem;
use crate::config::ConnectionLimits;

/// Connections past the cap that are still answered (one request each, quickly), so
/// `/healthz` answers while the server is full.
const OVERFLOW_CONNECTIONS: usize = 64;
/// How long an overflow connection may take to send its request head.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// The probe that must keep answering at the cap.
const HEALTH_PATH: &str = "/healthz";
/// A pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// File descriptors the process needs beside its client connections: database pools,
/// media files, model files, outgoing HTTP clients, logs.
const RESERVED_DESCRIPTORS: u64 = 512;

/// Raises the process's open-file limit (the soft one, up to the hard one) to what
/// `limits` needs, and says loudly when even that is too few: the cap would then be
/// reached by the kernel first and `/healthz` would stop answering.
pub fn ensure_descriptors(limits: &ConnectionLimits) {
    let needed = (limits.max_connections + OVERFLOW_CONNECTIONS) as u64 + RESERVED_DESCRIPTORS;
    match rlimit::increase_nofile_limit(needed) {
        Ok(limit) if limit < needed => tracing::warn!(
            limit,
            needed,
            "the open-file limit is below what MAX_CONNECTIONS needs: lower MAX_CONNECTIONS or raise `ulimit -n`"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not read or raise the open-file limit"),
    }
}

/// The body type poem's responses become for hyper.
type HyperBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

/// Serves `endpoint` on `listener` within `limits` until `shutdown` resolves; then stops
/// accepting, lets requests in flight finish for at most `grace`, and returns.
///
/// # Errors
/// When the listener's address cannot be read.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()>
where
    E: Endpoint<Output = Response> + 'static,
{
    let local_addr = listener.local_addr()?;
    let endpoint = Arc::new(endpoint);
    let served = Arc::new(Semaphore::new(limits.max_connections));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (socket, remote_addr) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "could not accept a connection");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                };
                let addresses = (local_addr, remote_addr);
                if let Ok(permit) = served.clone().try_acquire_owned() {
                    let connection = serve_connection(socket, addresses, endpoint.clone(), limits, stopping.clone());
                    connections.spawn(async move {
                        connection.await;
                        drop(permit);
                    });
                } else if let Ok(permit) = overflow.clone().try_acquire_owned() {
                    let connection = serve_overflow(socket, addresses, endpoint.clone(), stopping.clone());
                    connections.spawn(async move {
                        connection.await;
                        drop(permit);
                    });
                } else {
                    // Full, overflow included: closing at once is the only answer that frees
                    // the descriptor.
                    drop(socket);
                }
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period are closed");
        connections.shutdown().await;
    }
    Ok(())
}

/// Serves one connection within the limits, until the client closes it, it idles out,
/// or the server shuts down (requests in flight finish first).
async fn serve_connection<E>(
    socket: TcpStream,
    addresses: (SocketAddr, SocketAddr),
    endpoint: Arc<E>,
    limits: ConnectionLimits,
    stopping: watch::Receiver<bool>,
) where
    E: Endpoint<Output = Response> + 'static,
{
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Watched::new(socket, activity.clone()));
    let service = poem_service(endpoint, addresses, activity.clone(), false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let connection = builder.serve_connection(io, service);
    drive(connection, stopping, Some((activity, limits.idle_timeout))).await;
}

/// Serves one request of a connection past the cap: `/healthz` as usual, anything else
/// 503 with `Retry-After`; the connection closes after it.
async fn serve_overflow<E>(
    socket: TcpStream,
    addresses: (SocketAddr, SocketAddr),
    endpoint: Arc<E>,
    stopping: watch::Receiver<bool>,
) where
    E: Endpoint<Output = Response> + 'static,
{
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Watched::new(socket, activity.clone()));
    let service = poem_service(endpoint, addresses, activity.clone(), true);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(OVERFLOW_HEADER_TIMEOUT).keep_alive(false);
    let connection = builder.serve_connection(io, service);
    drive(connection, stopping, Some((activity, OVERFLOW_HEADER_TIMEOUT))).await;
}

/// Runs a connection to its end: closed when idle past its timeout, shut down gracefully
/// (requests in flight finish) when the server stops.
async fn drive<C>(connection: C, mut stopping: watch::Receiver<bool>, idle: Option<(Arc<Activity>, Duration)>)
where
    C: Future + GracefulConnection,
{
    tokio::pin!(connection);
    let idled_out = async {
        match idle {
            Some((activity, timeout)) => activity.idled_out(timeout).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(idled_out);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = &mut idled_out => return,
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    connection.as_mut().shut_down_gracefully();
    connection.await;
}

/// The one method of hyper-util's connection types that [`drive`] needs.
trait GracefulConnection {
    fn shut_down_gracefully(self: Pin<&mut Self>);
}

impl<I, S, E, B> GracefulConnection for auto::Connection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: auto::HttpServerConnExec<S::Future, B>,
{
    fn shut_down_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// A hyper service calling the poem endpoint, counting requests in flight on `activity`.
/// An overflow service answers only the health probe.
fn poem_service<E>(
    endpoint: Arc<E>,
    (local_addr, remote_addr): (SocketAddr, SocketAddr),
    activity: Arc<Activity>,
    overflow: bool,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<HyperBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<hyper::Response<HyperBody>, Infallible>> + Send,
> + Clone
where
    E: Endpoint<Output = Response> + 'static,
{
    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let endpoint = endpoint.clone();
        let activity = activity.clone();
        async move {
            let _running = activity.request_started();
            let response = if overflow && request.uri().path() != HEALTH_PATH {
                at_capacity()
            } else {
                let request = poem::Request::from((
                    request,
                    LocalAddr(Addr::SocketAddr(local_addr)),
                    RemoteAddr(Addr::SocketAddr(remote_addr)),
                    Scheme::HTTP,
                ));
                endpoint.get_response(request).await
            };
            Ok::<_, Infallible>(hyper::Response::<HyperBody>::from(response))
        }
    })
}

/// The answer to a request past the connection cap.
fn at_capacity() -> Response {
    let mut response = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server has as many connections open as it serves at once; please try again in a moment",
    )
    .into_poem_response();
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    response
}

/// When a connection last moved a byte, and how many of its requests are running.
#[derive(Default)]
struct Activity {
    /// Milliseconds since `started` at the last read or write.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    started: OnceInstant,
}

/// The connection's start, fixed at creation.
struct OnceInstant(tokio::time::Instant);

impl Default for OnceInstant {
    fn default() -> Self {
        Self(tokio::time::Instant::now())
    }
}

impl Activity {
    fn touch(&self) {
        self.last_ms.store(self.started.0.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Marks a request running until the guard drops.
    fn request_started(self: &Arc<Self>) -> RunningRequest {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RunningRequest(self.clone())
    }

    /// Resolves once no request has run and no byte moved for `timeout`.
    async fn idled_out(&self, timeout: Duration) {
        loop {
            let last = self.started.0 + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if tokio::time::Instant::now() >= deadline && self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            // A running request keeps the connection: look again a timeout later.
            let next =
                if tokio::time::Instant::now() >= deadline { tokio::time::Instant::now() + timeout } else { deadline };
            tokio::time::sleep_until(next).await;
        }
    }
}

/// A request in flight on a connection; its end counts as activity.
struct RunningRequest(Arc<Activity>);

impl Drop for RunningRequest {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket that records every byte read or written on its connection's [`Activity`],
/// and turns hyper's own error answers into problem+json.
///
/// hyper answers a request it cannot parse (a URI over 64 KiB: 414, a head too large or
/// with too many fields: 431, a malformed one: 400) by itself, with an empty body, before
/// any handler runs. Such an answer is recognised by its shape (a 4xx head without a
/// `Content-Type`; every answer of ours has one) and replaced by the same status as
/// `application/problem+json`, as the README promises for every error.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// A replacement answer still to be written, and how much of it has been.
    replacement: Option<(Vec<u8>, usize)>,
}

impl Watched {
    fn new(inner: TcpStream, activity: Arc<Activity>) -> Self {
        Self { inner, activity, replacement: None }
    }

    /// Writes what is left of a replacement answer; ready when all of it is written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some((bytes, written)) = &mut self.replacement {
            if *written == bytes.len() {
                self.replacement = None;
                break;
            }
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            self.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

/// hyper's own answer to a request it could not parse, as a problem+json answer of the
/// same status; `None` for any other bytes.
fn problem_for_automatic_answer(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse::<u16>().ok()?;
    let is_automatic = (400..500).contains(&status)
        && text.ends_with("\r\n\r\n")
        && text.to_ascii_lowercase().contains("content-length: 0\r\n")
        && !text.to_ascii_lowercase().contains("content-type:");
    if !is_automatic {
        return None;
    }
    let status = StatusCode::from_u16(status).ok()?;
    let detail = match status {
        StatusCode::URI_TOO_LONG => "the request URI is longer than 64 KiB",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request has too many header fields, or they are too large",
        _ => "the request could not be read as HTTP",
    };
    let body = Problem::new(status, detail).into_json();
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut answer = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        super::problem::PROBLEM_JSON,
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body.as_bytes());
    Some(answer)
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.poll_replacement(cx))?;
        if let Some(answer) = problem_for_automatic_answer(buf) {
            self.replacement = Some((answer, 0));
            // The replacement stands for all of hyper's bytes; flushing writes it.
            let _ = self.poll_replacement(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.poll_replacement(cx))?;
        if let [only] = bufs {
            return self.poll_write(cx, only);
        }
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_error_answers_become_problems_of_the_same_status() {
        let automatic = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 06:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(problem_for_automatic_answer(automatic).unwrap()).unwrap();
        assert!(answer
            .starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/problem+json\r\n"));
        let body: serde_json::Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["status"], 431);
        assert_eq!(body["type"], "about:blank");
    }

    #[test]
    fn answers_of_ours_pass_untouched() {
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n";
        assert!(problem_for_automatic_answer(ours).is_none());
        assert!(problem_for_automatic_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(problem_for_automatic_answer(b"{\"status\": 400}").is_none());
    }
}
