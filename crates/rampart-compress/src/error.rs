//! Errors of this crate.

/// A body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The encoded data is not valid for its coding.
    #[error("decode: corrupt input: {0}")]
    Corrupt(#[source] std::io::Error),
    /// Decoding would exceed the cap (a decompression bomb, or just too large).
    #[error("decode: output exceeds {max} bytes")]
    TooLarge {
        /// The cap.
        max: u64,
    },
}
