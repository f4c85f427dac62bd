//! The request deadline, and the work it must not cut short.
//!
//! Every request has [`ServerConfig::request_timeout`](crate::ServerConfig) to produce its
//! response; past it the client gets 503 and the handler is dropped. Some work must end with an
//! answer the caller can trust instead: a filing whose transaction is being committed. Were it cut
//! off, the doctor would not know whether the notification was filed, and sending it again could
//! file it twice. Such work claims the request's [`Deadline`] before it begins. Claiming and
//! timing out are one atomic choice:
//! - either the work was claimed, and the request runs to its end and answers with its outcome;
//! - or the deadline passed first, and the work is never begun: a 503 means nothing was done.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const OPEN: u8 = 0;
const CLAIMED: u8 = 1;
const PASSED: u8 = 2;

/// The deadline of one request, in its extensions (`Extension<Deadline>`).
#[derive(Debug, Clone)]
pub struct Deadline(Arc<AtomicU8>);

impl Deadline {
    /// A deadline that has neither passed nor been claimed.
    pub fn open() -> Deadline {
        Deadline(Arc::new(AtomicU8::new(OPEN)))
    }

    /// Claims the request for work that must run to its end. False when the deadline has passed:
    /// the caller already has its 503, so the work must not begin.
    pub fn claim(&self) -> bool {
        self.0
            .compare_exchange(OPEN, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || self.0.load(Ordering::Acquire) == CLAIMED
    }

    /// Marks the deadline passed unless the request was claimed first.
    fn pass(&self) -> bool {
        self.0
            .compare_exchange(OPEN, PASSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Gives each request `timeout` to produce its response, unless it claimed its deadline in time.
pub async fn enforce(State(timeout): State<Duration>, mut req: Request, next: Next) -> Response {
    let deadline = Deadline::open();
    req.extensions_mut().insert(deadline.clone());
    let run = next.run(req);
    tokio::pin!(run);
    match tokio::time::timeout(timeout, &mut run).await {
        Ok(response) => response,
        // The 503 gets its body from `render_errors` ("took too long, try again").
        Err(_) if deadline.pass() => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Err(_) => run.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_claimed_or_passed_never_both() {
        let claimed = Deadline::open();
        assert!(claimed.claim());
        assert!(claimed.claim(), "claiming twice is still claimed");
        assert!(!claimed.pass(), "a claimed request runs to its end");

        let passed = Deadline::open();
        assert!(passed.pass());
        assert!(!passed.claim(), "work must not begin once the caller has its 503");
    }
}
