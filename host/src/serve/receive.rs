//! A request body as the front door receives it: bounded in size and in time.
//!
//! The size bound stops a body that says nothing of its length (chunked) at the limit as it
//! streams. The time bound is Apache's `mod_reqtimeout` rule (`body=10,MinRate=16384`): a body
//! has [`BODY_TIMEOUT`] to arrive, a second more for each [`MIN_BODY_RATE`] bytes received.
//! Without it, a client that sends its headers and then a byte a minute holds a connection,
//! a task and a place among its tenant's open requests for ever; with it, holding one costs
//! it a steady stream of bytes, and ends with the body's size bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The largest request body.
pub(super) const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How long a body may take to arrive, before the allowance for what was received.
pub(super) const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The bytes that buy a body another second to arrive.
pub(super) const MIN_BODY_RATE: usize = 16 * 1024;

/// Why a body was cut off, if it was: what the front door answers instead of the reader's
/// own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    /// Past [`MAX_BODY_BYTES`].
    TooLarge,
    /// Not all there by its deadline.
    Late,
    /// Unreadable as HTTP (a broken chunked encoding, a connection that ended early).
    Broken,
}

/// Where a body's reader leaves word of why the body was cut off.
#[derive(Clone, Default)]
pub(super) struct CutOff(Arc<AtomicU8>);

impl CutOff {
    /// Why the body was cut off (`None`: it was not).
    pub(super) fn cut(&self) -> Option<Cut> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(Cut::TooLarge),
            2 => Some(Cut::Late),
            3 => Some(Cut::Broken),
            _ => None,
        }
    }

    fn set(&self, cut: Cut) -> Cut {
        let code = match cut {
            Cut::TooLarge => 1,
            Cut::Late => 2,
            Cut::Broken => 3,
        };
        self.0.store(code, Ordering::Relaxed);
        cut
    }
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cut::TooLarge => write!(f, "request body larger than {MAX_BODY_BYTES} bytes"),
            Cut::Late => write!(
                f,
                "request body not received in time ({} s, and a second more for each {} KiB received)",
                BODY_TIMEOUT.as_secs(),
                MIN_BODY_RATE / 1024
            ),
            Cut::Broken => write!(f, "request body unreadable as HTTP (its framing is broken)"),
        }
    }
}

impl std::error::Error for Cut {}

/// `body`, bounded; why it was cut off is left in `cut_off`. `place` (a place among the
/// bodies its sender may be sending at once) is given back when the body has arrived or
/// been cut off.
pub(super) fn bounded(
    body: Body,
    cut_off: CutOff,
    place: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Body {
    Body::new(Receiving::new(body, cut_off, BODY_TIMEOUT, place))
}

struct Receiving {
    body: Body,
    start: Instant,
    /// [`BODY_TIMEOUT`] but in tests.
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    received: usize,
    cut_off: CutOff,
    place: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Receiving {
    fn new(
        body: Body,
        cut_off: CutOff,
        timeout: Duration,
        place: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Self {
        let start = Instant::now();
        Self {
            body,
            start,
            timeout,
            deadline: Box::pin(tokio::time::sleep_until(start + timeout)),
            received: 0,
            cut_off,
            place,
        }
    }

    /// The next frame, or why the body was cut off.
    fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let frame = match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!(error = %e, "a request body could not be read");
                return Poll::Ready(Some(Err(self.cut_off.set(Cut::Broken).into())));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {
                return match self.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(self.cut_off.set(Cut::Late).into()))),
                    Poll::Pending => Poll::Pending,
                };
            }
        };
        if let Some(data) = frame.data_ref() {
            self.received += data.len();
            if self.received > MAX_BODY_BYTES {
                return Poll::Ready(Some(Err(self.cut_off.set(Cut::TooLarge).into())));
            }
            let allowance = Duration::from_secs((self.received / MIN_BODY_RATE) as u64);
            let deadline = self.start + self.timeout + allowance;
            if deadline != self.deadline.deadline() {
                self.deadline.as_mut().reset(deadline);
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }
}

impl HttpBody for Receiving {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = this.poll_body(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.place = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    type Sender = futures::channel::mpsc::UnboundedSender<Result<Bytes, std::convert::Infallible>>;

    /// A body whose bytes the test sends, read under a deadline of `timeout`.
    fn receiving(timeout: Duration) -> (Sender, CutOff, tokio::task::JoinHandle<bool>) {
        let (sender, stream) = futures::channel::mpsc::unbounded();
        let cut_off = CutOff::default();
        let body = Receiving::new(Body::from_stream(stream), cut_off.clone(), timeout, None);
        let read = tokio::spawn(async move { Body::new(body).collect().await.is_ok() });
        (sender, cut_off, read)
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_is_cut_off_when_its_time_is_up() {
        let (sender, cut_off, read) = receiving(Duration::from_millis(300));
        // What arrived buys it a second more: 1.3 s in all.
        sender
            .unbounded_send(Ok(Bytes::from(vec![b'x'; MIN_BODY_RATE])))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!read.is_finished(), "cut off before its time");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(read.is_finished(), "still waiting after its time");
        assert!(!read.await.unwrap());
        assert_eq!(cut_off.cut(), Some(Cut::Late));
    }

    #[tokio::test]
    async fn a_body_past_the_bound_is_cut_off_as_it_streams() {
        let (sender, cut_off, read) = receiving(BODY_TIMEOUT);
        for _ in 0..=MAX_BODY_BYTES / MIN_BODY_RATE {
            sender
                .unbounded_send(Ok(Bytes::from(vec![b'x'; MIN_BODY_RATE])))
                .unwrap();
        }
        assert!(!read.await.unwrap());
        assert_eq!(cut_off.cut(), Some(Cut::TooLarge));
    }

    #[tokio::test]
    async fn a_body_gives_its_place_back_once_it_has_arrived() {
        let places = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
        let (sender, stream) = futures::channel::mpsc::unbounded();
        let place = places.clone().try_acquire_owned().ok();
        let mut body = bounded(Body::from_stream(stream), CutOff::default(), place);
        sender
            .unbounded_send(Ok::<_, std::convert::Infallible>(Bytes::from_static(b"{")))
            .unwrap();
        assert!(body.frame().await.is_some());
        assert_eq!(
            places.available_permits(),
            0,
            "given back before the body arrived"
        );
        drop(sender);
        assert!(body.frame().await.is_none());
        assert_eq!(places.available_permits(), 1, "kept after the body arrived");
    }

    #[tokio::test]
    async fn a_body_that_arrives_in_time_is_read_whole() {
        let (sender, cut_off, read) = receiving(Duration::from_millis(300));
        sender
            .unbounded_send(Ok(Bytes::from_static(b"{}")))
            .unwrap();
        drop(sender);
        assert!(read.await.unwrap());
        assert_eq!(cut_off.cut(), None);
    }
}
