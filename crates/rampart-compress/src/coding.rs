//! Content codings (RFC 9110 §8.4.1) and their encoders and decoders.
//!
//! One-shot [`encode`] / [`decode`] for bodies stored in the cache, a [`StreamEncoder`] for
//! responses that stream through, and [`Levels`] per algorithm. Decoding is always capped
//! (`max` output bytes): a small compressed body cannot expand into unbounded memory.
//! [`Coding`] itself (tokens, parsing) lives in `rampart_core::negotiate`, shared with the
//! static file service and the cache.

use std::io::{self, Read, Write};

use bytes::Bytes;

use crate::error::DecodeError;

pub use rampart_core::negotiate::{Coding, CodingSet};

/// A compression level per coding (brotli 0-11, zstd 1-22, gzip / deflate 0-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// Brotli quality.
    pub br: u32,
    /// zstd level.
    pub zstd: i32,
    /// gzip level.
    pub gzip: u32,
    /// deflate level.
    pub deflate: u32,
}

impl Levels {
    /// On-the-fly defaults, tuned for throughput (see `docs/compression.md` for the
    /// measurements behind them).
    pub const STREAM: Levels = Levels {
        br: 4,
        zstd: 3,
        gzip: 6,
        deflate: 6,
    };
    /// Defaults for variants made once and stored in the cache: higher, because the cost is
    /// paid once per object, off the request path.
    pub const STORED: Levels = Levels {
        br: 9,
        zstd: 12,
        gzip: 9,
        deflate: 9,
    };

    /// The level of `coding`, as a signed number.
    pub fn get(&self, coding: Coding) -> i32 {
        match coding {
            Coding::Br => self.br as i32,
            Coding::Zstd => self.zstd,
            Coding::Gzip => self.gzip as i32,
            Coding::Deflate => self.deflate as i32,
        }
    }
}

impl Default for Levels {
    fn default() -> Self {
        Self::STREAM
    }
}

/// Brotli window: 2^22 (4 MiB), the reference default.
const BR_LGWIN: u32 = 22;
/// Internal buffer of the brotli writer.
const BR_BUFFER: usize = 16 * 1024;

/// An incremental encoder writing into an owned buffer that is drained after each write.
pub enum StreamEncoder {
    /// Brotli.
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    /// gzip.
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    /// zlib ("deflate").
    Deflate(flate2::write::ZlibEncoder<Vec<u8>>),
}

impl std::fmt::Debug for StreamEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamEncoder::Br(_) => "StreamEncoder(br)",
            StreamEncoder::Zstd(_) => "StreamEncoder(zstd)",
            StreamEncoder::Gzip(_) => "StreamEncoder(gzip)",
            StreamEncoder::Deflate(_) => "StreamEncoder(deflate)",
        })
    }
}

impl StreamEncoder {
    /// A fresh encoder for `coding` at `level` (clamped to the coding's range).
    pub fn new(coding: Coding, level: i32) -> io::Result<Self> {
        let out = Vec::new();
        Ok(match coding {
            Coding::Br => StreamEncoder::Br(Box::new(brotli::CompressorWriter::new(
                out,
                BR_BUFFER,
                level.clamp(0, 11) as u32,
                BR_LGWIN,
            ))),
            Coding::Zstd => {
                StreamEncoder::Zstd(zstd::stream::write::Encoder::new(out, level.clamp(1, 22))?)
            }
            Coding::Gzip => StreamEncoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(level.clamp(0, 9) as u32),
            )),
            Coding::Deflate => StreamEncoder::Deflate(flate2::write::ZlibEncoder::new(
                out,
                flate2::Compression::new(level.clamp(0, 9) as u32),
            )),
        })
    }

    fn out(&mut self) -> &mut Vec<u8> {
        match self {
            StreamEncoder::Br(w) => w.get_mut(),
            StreamEncoder::Zstd(w) => w.get_mut(),
            StreamEncoder::Gzip(w) => w.get_mut(),
            StreamEncoder::Deflate(w) => w.get_mut(),
        }
    }

    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(self.out()))
    }

    /// Feed `data`; returns the compressed bytes produced so far (may be empty).
    pub fn write(&mut self, data: &[u8]) -> io::Result<Bytes> {
        match self {
            StreamEncoder::Br(w) => w.write_all(data)?,
            StreamEncoder::Zstd(w) => w.write_all(data)?,
            StreamEncoder::Gzip(w) => w.write_all(data)?,
            StreamEncoder::Deflate(w) => w.write_all(data)?,
        }
        Ok(self.take())
    }

    /// Emit everything fed so far (a sync flush: the stream stays open), for streams that
    /// pause (server-sent events, slow producers).
    pub fn flush(&mut self) -> io::Result<Bytes> {
        match self {
            StreamEncoder::Br(w) => w.flush()?,
            StreamEncoder::Zstd(w) => w.flush()?,
            StreamEncoder::Gzip(w) => w.flush()?,
            StreamEncoder::Deflate(w) => w.flush()?,
        }
        Ok(self.take())
    }

    /// End the stream; returns the last bytes.
    pub fn finish(self) -> io::Result<Bytes> {
        let out = match self {
            StreamEncoder::Br(w) => w.into_inner(),
            StreamEncoder::Zstd(w) => w.finish()?,
            StreamEncoder::Gzip(w) => w.finish()?,
            StreamEncoder::Deflate(w) => w.finish()?,
        };
        Ok(Bytes::from(out))
    }
}

/// Compress a whole body.
pub fn encode(coding: Coding, level: i32, data: &[u8]) -> io::Result<Bytes> {
    if coding == Coding::Zstd {
        // The one-shot API sizes its output once and skips the streaming bookkeeping.
        return zstd::bulk::compress(data, level.clamp(1, 22)).map(Bytes::from);
    }
    let mut enc = StreamEncoder::new(coding, level)?;
    let mut out = enc.write(data)?.to_vec();
    out.extend_from_slice(&enc.finish()?);
    Ok(Bytes::from(out))
}

/// Decompress a whole body, refusing to produce more than `max` bytes.
pub fn decode(coding: Coding, data: &[u8], max: u64) -> Result<Bytes, DecodeError> {
    match coding {
        Coding::Br => read_capped(brotli::Decompressor::new(data, 16 * 1024), max),
        Coding::Zstd => read_capped(
            zstd::stream::read::Decoder::new(data).map_err(DecodeError::Corrupt)?,
            max,
        ),
        Coding::Gzip => read_capped(flate2::read::MultiGzDecoder::new(data), max),
        Coding::Deflate => read_capped(flate2::read::ZlibDecoder::new(data), max),
    }
}

fn read_capped(r: impl Read, max: u64) -> Result<Bytes, DecodeError> {
    let mut out = Vec::new();
    let n = r
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(DecodeError::Corrupt)?;
    if n as u64 > max {
        return Err(DecodeError::TooLarge { max });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..4000 {
            v.extend_from_slice(format!("{{\"id\":{i},\"name\":\"item {i}\"}},").as_bytes());
        }
        v
    }

    #[test]
    fn every_coding_round_trips_one_shot_and_streaming() {
        let data = sample();
        for c in Coding::ALL {
            let one = encode(c, Levels::STREAM.get(c), &data).unwrap();
            assert!(one.len() < data.len() / 4, "{c} compresses");
            assert_eq!(decode(c, &one, 1 << 30).unwrap(), data, "{c}");
            let mut enc = StreamEncoder::new(c, Levels::STREAM.get(c)).unwrap();
            let mut out = Vec::new();
            for chunk in data.chunks(1000) {
                out.extend_from_slice(&enc.write(chunk).unwrap());
            }
            out.extend_from_slice(&enc.flush().unwrap());
            out.extend_from_slice(&enc.finish().unwrap());
            assert_eq!(decode(c, &out, 1 << 30).unwrap(), data, "{c} streamed");
        }
    }

    #[test]
    fn decode_is_capped_and_rejects_garbage() {
        let zeros = vec![0u8; 1 << 20];
        for c in Coding::ALL {
            let small = encode(c, 5, &zeros).unwrap();
            assert!(matches!(
                decode(c, &small, 1000),
                Err(DecodeError::TooLarge { max: 1000 })
            ));
            assert!(
                decode(c, b"definitely not compressed data", 1 << 20).is_err(),
                "{c}"
            );
        }
    }
}
