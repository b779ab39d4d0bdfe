//! The SMTP connection's byte stream, TLS or plain TCP, watched: it records whether what was
//! written reached the kernel, which tells a message the relay may have whole (in doubt) from
//! one it cannot have (safe to retry).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::net::TcpStream;

/// Whether what was written to a [`Watched`] stream was flushed to the kernel.
#[derive(Debug, Default)]
pub struct Written {
    /// Since [`Self::arm`]: a flush completed, so everything written before it is in the
    /// kernel. Sticky, so that a TLS alert written later on the read path (rustls does that
    /// when a record is bad) cannot make a complete message look incomplete.
    reached: AtomicBool,
}

impl Written {
    /// Starts watching for the next completed flush.
    pub(super) fn arm(&self) {
        self.reached.store(false, Ordering::Release);
    }

    /// Since [`Self::arm`], everything written was flushed.
    pub(super) fn reached(&self) -> bool {
        self.reached.load(Ordering::Acquire)
    }
}

/// The connection's stream, passed through untouched, with a record of whether what lettre
/// wrote has all reached the kernel. lettre writes a command (or the whole DATA payload) and
/// flushes it before it reads the reply, so after a failure this tells a message the relay
/// may have whole (in doubt) from one it cannot have (safe to retry), which lettre's error
/// alone does not.
#[derive(Debug)]
pub(super) struct Watched<S> {
    inner: S,
    written: Arc<Written>,
}

impl<S> Watched<S> {
    pub(super) fn new(inner: S, written: Arc<Written>) -> Watched<S> {
        Watched { inner, written }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        self.written.reached.store(true, Ordering::Release);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncTokioStream + Unpin> AsyncTokioStream for Watched<S> {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }
}

/// A rustls stream in the shape lettre accepts for a connection it did not open itself.
#[derive(Debug)]
pub(super) struct TlsTcp(pub(super) tokio_rustls::client::TlsStream<TcpStream>);

impl tokio::io::AsyncRead for TlsTcp {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flag says "flushed" only after a whole write was flushed; a write the peer cannot
    /// take (it is gone) leaves it unset, so the message counts as not sent rather than in
    /// doubt. Once set it stays set: a later write (a TLS alert) does not undo it.
    #[tokio::test]
    async fn written_is_set_only_by_a_flush_after_a_whole_write() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (near, mut far) = tokio::io::duplex(1 << 12);
        let written = Arc::new(Written::default());
        let mut watched = Watched::new(near, written.clone());

        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 100_000];
            far.read_exact(&mut got).await.unwrap();
            got
        });
        let big = vec![b'x'; 100_000];
        written.arm();
        watched.write_all(&big).await.unwrap();
        assert!(!written.reached(), "written, not flushed yet");
        watched.flush().await.unwrap();
        assert!(written.reached());
        assert_eq!(reader.await.unwrap(), big);
        // The peer is gone: a later write fails, and what was reached stays reached.
        assert!(watched.write_all(b"alert").await.is_err());
        assert!(written.reached());

        written.arm();
        let e = watched.write_all(&big).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        assert!(!written.reached());
    }
}
