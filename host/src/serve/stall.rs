//! A connection whose writes may not stall for long.
//!
//! hyper times the reading of a request's headers, never the writing of a response. A peer
//! that stops reading (a slow-read attack: requests pipelined in one write, the replies never
//! read; or a reply it never collects) would keep its connection, and the places its request
//! holds, for as long as its kernel keeps the socket open. Here a write that has made no
//! progress for [`WRITE_STALL`] fails, and hyper closes the connection. A stream with nothing to
//! send (an idle SSE stream) is not writing, so it is not stalled.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a write may wait for the peer to read.
pub(super) const WRITE_STALL: Duration = Duration::from_secs(30);

/// `io`, its writes bounded by a stall timeout.
pub(super) struct NoStall<S> {
    io: S,
    limit: Duration,
    /// Armed while a write waits; reset by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> NoStall<S> {
    pub(super) fn new(io: S, limit: Duration) -> Self {
        Self {
            io,
            limit,
            stalled: None,
        }
    }

    /// `polled` as it is, unless it is one more wait of a write that has waited too long.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let stall = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the peer read nothing for {} s", limit.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for NoStall<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoStall<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.guard(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.guard(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_shutdown(cx);
        this.guard(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_the_peer_never_reads_fails_when_its_time_is_up() {
        let (ours, _peer) = tokio::io::duplex(1024);
        let mut ours = NoStall::new(ours, Duration::from_millis(200));
        let writing = ours.write_all(&[b'x'; 64 * 1024]);
        let failed = tokio::time::timeout(Duration::from_secs(5), writing).await;
        let error = failed.expect("still writing after 5 s").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_peer_that_reads_slowly_but_steadily_is_not_stalled() {
        let (ours, mut peer) = tokio::io::duplex(1024);
        let mut ours = NoStall::new(ours, Duration::from_millis(300));
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let mut read = 0;
            while read < 8 * 1024 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                read += peer.read(&mut buf).await.unwrap();
            }
        });
        // Eight reads 100 ms apart: 800 ms in all, more than the limit, each wait less.
        ours.write_all(&[b'x'; 8 * 1024]).await.unwrap();
        reading.await.unwrap();
    }
}
