//! Leaf errors of the cache crate.

/// A purge request that cannot be carried out (the admin API answers 400 with the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeError {
    /// None of `urls`, `prefix`, `tags`, `all` was given.
    #[error("purge: give one of urls, prefix, tags or all")]
    NoSelector,
    /// More than one selector was given.
    #[error("purge: give only one of urls, prefix, tags or all")]
    ManySelectors,
    /// A selector was given but empty.
    #[error("purge: {0} is empty")]
    Empty(&'static str),
    /// A URL is not absolute (`scheme://host/path`).
    #[error("purge: url {0:?} is not an absolute http(s) url")]
    BadUrl(String),
}
