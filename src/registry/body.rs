//! Blob bodies as byte streams that a stalled or trickling registry cannot hold open.
//!
//! reqwest's read timeout ends a body only when nothing at all arrives for that long, so a
//! registry sending one byte a second would hold a scan for ever (a 100 MB layer: three years).
//! This adds a floor: at least `MIN_BYTES_PER_WINDOW` bytes in every `--timeout` window. It does
//! not cap the total time of a large download that keeps moving; the declared blob size and its
//! digest bound what is read (the layer walker checks both).

use super::Error;
use bytes::Bytes;
use futures_util::Stream;
use std::time::Duration;
use tokio::time::Instant;

/// The least a registry must send in one `--timeout` window (1 KiB: 17 bytes/s with the default
/// 60 s timeout, far below any working link).
pub const MIN_BYTES_PER_WINDOW: u64 = 1024;

struct State {
    response: reqwest::Response,
    window: Duration,
    started: Instant,
    received: u64,
    registry: String,
    what: String,
}

impl State {
    /// The end of a window: too little arrived means a stalled registry; otherwise a new window.
    fn next_window(&mut self) -> std::io::Result<()> {
        if self.received < MIN_BYTES_PER_WINDOW {
            return Err(self.stalled());
        }
        self.started = Instant::now();
        self.received = 0;
        Ok(())
    }

    fn stalled(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            Error::Stalled {
                registry: self.registry.clone(),
                what: self.what.clone(),
                bytes: self.received,
                seconds: self.window.as_secs(),
            },
        )
    }
}

/// The body of `response` (a blob named `what` from `registry`), failing with
/// `Error::Stalled` when a `window` passes with less than `MIN_BYTES_PER_WINDOW` received.
pub fn guarded(
    response: reqwest::Response,
    window: Duration,
    registry: &str,
    what: String,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let state = State {
        response,
        window,
        started: Instant::now(),
        received: 0,
        registry: registry.to_string(),
        what,
    };
    futures_util::stream::try_unfold(state, |mut state| async move {
        loop {
            let deadline = state.started + state.window;
            match tokio::time::timeout_at(deadline, state.response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    state.received += chunk.len() as u64;
                    if Instant::now() >= deadline {
                        state.next_window()?;
                    }
                    return Ok(Some((chunk, state)));
                }
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(e)) if e.is_timeout() => return Err(state.stalled()),
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(_) => state.next_window()?,
            }
        }
    })
}
