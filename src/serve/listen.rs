//! The service's HTTP/1 listener: the axum router served by hyper with a header-read timeout,
//! an idle timeout and a cap on open connections, so that slow clients can neither use up the
//! process's file descriptors nor keep a connection for ever, and a fast client still gets its
//! answer. Not the routes (`mod.rs`), and not TLS (a proxy in front does that).
//!
//! Hand-written instead of `axum::serve`: axum 0.8's `serve` sets no header-read timeout, no
//! idle timeout and no connection limit, and has no option for any of them; hyper and hyper-util
//! provide each piece, and this wires them.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// What one client connection may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must arrive within this (`header_timeout_seconds`).
    pub header_timeout: Duration,
    /// A connection on which no byte moves for this long is closed (`idle_timeout_seconds`).
    pub idle_timeout: Duration,
    /// Open client connections at once; past it a new one is closed at once
    /// (`max_connections`).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` until `stopping` turns true, then lets open requests finish
/// (for at most `grace`). `refused` is called for each connection closed at the limit.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
    refused: impl Fn(),
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // EMFILE and ECONNABORTED end one accept, not the service.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopping.wait_for(|stop| *stop) => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused();
            drop(stream);
            continue;
        };
        let io = Watched::new(stream);
        let last = io.last.clone();
        let started = io.started;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        let connection = graceful.watch(builder.serve_connection(
            hyper_util::rt::TokioIo::new(io),
            hyper_util::service::TowerToHyperService::new(router.clone()),
        ));
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = connection => {}
                () = idle(&last, started, limits.idle_timeout) => {}
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within the grace period");
    }
}

/// Ends once `idle` has passed since the last byte moved.
async fn idle(last: &AtomicU64, started: Instant, idle: Duration) {
    loop {
        let since = Duration::from_millis(last.load(Ordering::Relaxed));
        let deadline = started + since + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// A client stream that records when a byte last moved either way.
struct Watched {
    inner: TcpStream,
    started: Instant,
    /// Milliseconds from `started` to the last byte read or written.
    last: Arc<AtomicU64>,
}

impl Watched {
    fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            started: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
