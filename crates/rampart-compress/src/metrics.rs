//! Compression metrics.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `rampart_compression_bytes_total` | counter | `encoding`, `direction` = `in` (identity bytes of responses sent encoded) / `out` (bytes sent) |
//! | `rampart_compression_ratio` | histogram | `encoding`: encoded / identity size of each compression made |
//! | `rampart_compression_operations_total` | counter | `encoding`, `mode` = `stream` (a response compressed as it streams), `stored` (a variant made once for a cache entry), `inline` (made on the request path for a client that refuses identity), `decode` (a stored encoded body decoded once) |
//!
//! Handles are resolved once per encoding at registration: recording on the hit path is a
//! few atomic adds.

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::coding::Coding;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BytesLabels {
    encoding: &'static str,
    direction: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EncodingLabel {
    encoding: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabels {
    encoding: &'static str,
    mode: &'static str,
}

/// How a compression (or decoding) was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A response compressed while it streams.
    Stream,
    /// A variant made once for a stored entry.
    Stored,
    /// Made on the request path (the client refuses identity and no variant exists yet).
    Inline,
    /// A stored encoded body decoded once.
    Decode,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Stream => "stream",
            Mode::Stored => "stored",
            Mode::Inline => "inline",
            Mode::Decode => "decode",
        }
    }

    const ALL: [Mode; 4] = [Mode::Stream, Mode::Stored, Mode::Inline, Mode::Decode];
}

#[derive(Debug)]
struct PerCoding {
    bytes_in: Counter,
    bytes_out: Counter,
    ratio: Histogram,
    ops: [Counter; 4],
}

/// The compression metric families (cheap to clone).
#[derive(Debug, Clone)]
pub struct CompressMetrics {
    per: Arc<[PerCoding; 4]>,
}

impl Default for CompressMetrics {
    /// Unregistered metrics (tests).
    fn default() -> Self {
        Self::register(&mut Registry::default())
    }
}

impl CompressMetrics {
    /// Register the families (full `rampart_*` names).
    pub fn register(registry: &mut Registry) -> Self {
        let bytes = Family::<BytesLabels, Counter>::default();
        let ratio = Family::<EncodingLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.03125, 2.0, 6))
        });
        let ops = Family::<OpLabels, Counter>::default();
        registry.register(
            "rampart_compression_bytes",
            "Bytes of responses sent with a content coding: identity size (in) and sent size (out)",
            bytes.clone(),
        );
        registry.register(
            "rampart_compression_ratio",
            "Encoded size / identity size of each compression made",
            ratio.clone(),
        );
        registry.register(
            "rampart_compression_operations",
            "Compressions and decodings performed, by encoding and mode",
            ops.clone(),
        );
        // Each guard returned by `get_or_create` holds the family's lock: one per statement.
        let counter = |l: BytesLabels| -> Counter { bytes.get_or_create(&l).clone() };
        let op = |l: OpLabels| -> Counter { ops.get_or_create(&l).clone() };
        let per = Coding::ALL.map(|c| {
            let encoding = c.as_str();
            let bytes_in = counter(BytesLabels {
                encoding,
                direction: "in",
            });
            let bytes_out = counter(BytesLabels {
                encoding,
                direction: "out",
            });
            let hist = ratio.get_or_create(&EncodingLabel { encoding }).clone();
            let ops = Mode::ALL.map(|m| {
                op(OpLabels {
                    encoding,
                    mode: m.as_str(),
                })
            });
            PerCoding {
                bytes_in,
                bytes_out,
                ratio: hist,
                ops,
            }
        });
        Self { per: Arc::new(per) }
    }

    /// A response went out encoded: `identity` bytes became `sent` bytes.
    pub fn served(&self, c: Coding, identity: u64, sent: u64) {
        let p = &self.per[c as usize];
        p.bytes_in.inc_by(identity);
        p.bytes_out.inc_by(sent);
    }

    /// A compression (or decoding) was performed.
    pub fn operation(&self, c: Coding, mode: Mode) {
        self.per[c as usize].ops[mode as usize].inc();
    }

    /// The size ratio of a compression made.
    pub fn ratio(&self, c: Coding, identity: u64, encoded: u64) {
        if identity > 0 {
            self.per[c as usize]
                .ratio
                .observe(encoded as f64 / identity as f64);
        }
    }

    /// Operations of `c` in `mode` so far.
    pub fn operations(&self, c: Coding, mode: Mode) -> u64 {
        self.per[c as usize].ops[mode as usize].get()
    }

    /// Totals over every encoding: (identity bytes, sent bytes). Saved = in - out.
    pub fn totals(&self) -> (u64, u64) {
        self.per.iter().fold((0, 0), |(i, o), p| {
            (i + p.bytes_in.get(), o + p.bytes_out.get())
        })
    }
}
