//! The built-in HTTP/1.1 client: one connection, one exchange at a time (no pipelining, as
//! wrk), the request written with one `write` of its pre-encoded bytes and the response
//! decoded by [`codec::Decoder`] straight from a reusable per-connection read buffer.
//!
//! Why not hyper here: per request, hyper's client dispatch costs a request channel, a
//! response oneshot, a body channel and a `HeaderMap`; this loop costs a `write`, a `read`
//! (two for bodies beyond the buffer) and one pass of `httparse` over the head. Nothing is
//! allocated per request (an assertion failure message aside).
//!
//! Reads go through tokio's `AsyncRead` on the `TcpStream`: a read that does not fill the
//! buffer clears the socket's readiness, so the next read waits for epoll instead of making a
//! `read` system call that would return `EAGAIN`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::codec::{Decoder, MAX_PENDING};
use crate::plan::Template;
use crate::report::ErrorKind;
use crate::worker::{Exchange, Failure};

/// Initial read buffer per connection: a 1 KiB response and its head fit in one read, larger
/// bodies stream through it. A head larger than this grows it, up to [`MAX_PENDING`].
const READ_BUF: usize = 16 * 1024;

/// A client connection's byte stream: plain TCP or TLS.
pub(crate) enum Stream {
    /// `http://`.
    Tcp(TcpStream),
    /// `https://` (boxed: the TLS state is large and this enum is moved around).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// One HTTP/1.1 connection of the built-in client.
pub(crate) struct H1Conn {
    io: Stream,
    /// Read buffer; `buf[start..end]` holds received bytes not yet decoded.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    decoder: Decoder,
}

impl H1Conn {
    pub fn new(io: Stream) -> Self {
        Self {
            io,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            decoder: Decoder::new(),
        }
    }

    /// Sends `tpl` and reads its whole response.
    ///
    /// Failures: the server closing (or resetting) the connection before any byte of the
    /// response is [`Failure::Closed`] (a keep-alive connection closed while idle: the caller
    /// resends on a new one); a truncated or reset response is `reset`, a malformed one `other`.
    /// After any failure the connection is unusable.
    pub async fn exchange(&mut self, tpl: &Template) -> Result<Exchange, Failure> {
        if let Err(e) = self.send(&tpl.wire).await {
            return Err(closed_or_failed(&e, "sending the request"));
        }
        self.decoder.start(tpl.head);
        let mut received = self.end > self.start;
        loop {
            if self.start < self.end {
                let pending = &self.buf[self.start..self.end];
                let used = self
                    .decoder
                    .feed(pending, &tpl.expect)
                    .map_err(|e| Failure::Failed(e.kind(), e.to_string()))?;
                self.start += used;
                if self.decoder.is_done() {
                    break;
                }
            }
            self.make_room()?;
            let n = match self.io.read(&mut self.buf[self.end..]).await {
                Ok(n) => n,
                Err(e) if !received => return Err(closed_or_failed(&e, "reading the response")),
                Err(e) => {
                    return Err(Failure::Failed(
                        io_kind(&e),
                        format!("reading the response: {e}"),
                    ));
                }
            };
            if n == 0 {
                if !received {
                    return Err(Failure::Closed(
                        "the server closed the connection without a response".to_owned(),
                    ));
                }
                self.decoder
                    .eof()
                    .map_err(|e| Failure::Failed(e.kind(), e.to_string()))?;
                break;
            }
            received = true;
            self.end += n;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let d = &mut self.decoder;
        Ok(Exchange {
            status: d.status,
            body_bytes: d.body_bytes,
            assertion: d.assertion.take(),
            close: d.close || tpl.close,
        })
    }

    /// Writes the whole request (one `write` unless the socket buffer is full) and flushes
    /// (a no-op on TCP, pushes the records out on TLS).
    async fn send(&mut self, wire: &[u8]) -> io::Result<()> {
        self.io.write_all(wire).await?;
        self.io.flush().await
    }

    /// Makes space after `end` for the next read: drops decoded bytes, moves an incomplete
    /// head or line to the front, grows the buffer for a large head up to [`MAX_PENDING`].
    #[inline]
    fn make_room(&mut self) -> Result<(), Failure> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_PENDING {
                let e = self.decoder.too_large();
                return Err(Failure::Failed(e.kind(), e.to_string()));
            }
            self.buf.resize((self.buf.len() * 2).min(MAX_PENDING), 0);
        }
        Ok(())
    }
}

/// An I/O error before any byte of the response: a reset or closed connection is
/// [`Failure::Closed`], anything else a failed request.
fn closed_or_failed(e: &io::Error, doing: &str) -> Failure {
    match io_kind(e) {
        ErrorKind::Reset => Failure::Closed(format!("{doing}: {e}")),
        kind => Failure::Failed(kind, format!("{doing}: {e}")),
    }
}

/// The error kind of an I/O error, as for hyper's errors.
fn io_kind(e: &io::Error) -> ErrorKind {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            ErrorKind::Reset
        }
        K::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}
