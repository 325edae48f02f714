//! [`CompressBody`]: compresses a response body as it streams, in bounded memory (the
//! encoder's window plus the output of one input chunk).
//!
//! Output is emitted as soon as the encoder produces it; when the source has nothing more to
//! give right now (it returned `Pending`) the encoder is flushed, so slow or event streams
//! are not held back waiting for a full compression block.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use rampart_core::{Body, BoxError};

use crate::{
    coding::{Coding, StreamEncoder},
    metrics::{CompressMetrics, Mode},
};

type Polled = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

/// A body compressed on the fly.
pub struct CompressBody {
    inner: Body,
    enc: Option<StreamEncoder>,
    coding: Coding,
    metrics: CompressMetrics,
    read: u64,
    written: u64,
    dirty: bool,
    trailers: Option<HeaderMap>,
    done: bool,
}

impl CompressBody {
    /// Wrap `inner`.
    pub fn new(inner: Body, enc: StreamEncoder, coding: Coding, metrics: CompressMetrics) -> Self {
        Self {
            inner,
            enc: Some(enc),
            coding,
            metrics,
            read: 0,
            written: 0,
            dirty: false,
            trailers: None,
            done: false,
        }
    }

    fn emit(&mut self, out: Bytes) -> Option<Polled> {
        if out.is_empty() {
            return None;
        }
        self.written += out.len() as u64;
        Some(Poll::Ready(Some(Ok(Frame::data(out)))))
    }

    fn finish(&mut self) -> Result<Bytes, BoxError> {
        let Some(enc) = self.enc.take() else {
            return Ok(Bytes::new());
        };
        let out = enc.finish()?;
        let sent = self.written + out.len() as u64;
        self.metrics.operation(self.coding, Mode::Stream);
        self.metrics.served(self.coding, self.read, sent);
        self.metrics.ratio(self.coding, self.read, sent);
        Ok(out)
    }
}

impl http_body::Body for CompressBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let Some(enc) = this.enc.as_mut() else {
                this.done = true;
                continue;
            };
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if this.dirty {
                        this.dirty = false;
                        match enc.flush() {
                            Ok(out) => {
                                if let Some(p) = this.emit(out) {
                                    return p;
                                }
                            }
                            Err(e) => return Poll::Ready(Some(Err(e.into()))),
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(e))) => {
                    this.enc = None;
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.read += data.len() as u64;
                        this.dirty = true;
                        match enc.write(&data) {
                            Ok(out) => {
                                if let Some(p) = this.emit(out) {
                                    return p;
                                }
                            }
                            Err(e) => return Poll::Ready(Some(Err(e.into()))),
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            this.trailers = Some(t);
                        }
                    }
                },
                Poll::Ready(None) => {
                    this.done = true;
                    match this.finish() {
                        Ok(out) => {
                            if let Some(p) = this.emit(out) {
                                return p;
                            }
                        }
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::coding::{Levels, decode};
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test]
    async fn streams_and_round_trips() {
        let chunks: Vec<Result<Frame<Bytes>, BoxError>> = (0..50)
            .map(|i| {
                Ok(Frame::data(Bytes::from(
                    format!("line {i} of a long text\n").repeat(50),
                )))
            })
            .collect();
        let total: usize = chunks
            .iter()
            .map(|c| c.as_ref().unwrap().data_ref().unwrap().len())
            .sum();
        let src = rampart_core::body::boxed(StreamBody::new(futures_util::stream::iter(chunks)));
        let m = CompressMetrics::default();
        let enc = StreamEncoder::new(Coding::Gzip, Levels::STREAM.gzip as i32).unwrap();
        let body = CompressBody::new(src, enc, Coding::Gzip, m.clone());
        let out = body.collect().await.unwrap().to_bytes();
        let back = decode(Coding::Gzip, &out, 1 << 30).unwrap();
        assert_eq!(back.len(), total);
        assert_eq!(m.operations(Coding::Gzip, Mode::Stream), 1);
        assert_eq!(m.totals(), (total as u64, out.len() as u64));
    }
}
