//! Typed errors of the load generator. `anyhow` appears only in [`crate::run`].

use std::io;
use std::path::PathBuf;

/// Everything that can stop a benchmark from starting or from writing its results.
///
/// Failures of individual requests are not errors of this type: they are counted per
/// [`crate::report::ErrorKind`] in the result.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A URL whose scheme is not `http` or `https`.
    #[error(
        "unsupported url {url:?}: scheme {scheme:?} is not supported, only http:// and https:// are"
    )]
    UnsupportedScheme {
        /// The URL as given.
        url: String,
        /// The scheme found in it.
        scheme: String,
    },
    /// A URL that does not parse or lacks a host.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `-H` header that is not `Name: value`, or a header name/value that is not valid HTTP.
    #[error("invalid header {header:?}: {reason}")]
    InvalidHeader {
        /// The header as given.
        header: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option whose value is out of range or contradicts another option.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option, e.g. `--rate`.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A scenario file that does not parse or does not validate.
    #[error("scenario {path}: {reason}")]
    Scenario {
        /// The scenario file.
        path: PathBuf,
        /// What is wrong, with the key path and line where known.
        reason: String,
    },
    /// A baseline file that cannot be read as a previous `--json` result.
    #[error("baseline {path}: {reason}")]
    Baseline {
        /// The baseline file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file that cannot be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// `reading` or `writing`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A host name that does not resolve.
    #[error("resolving {host}: {reason}")]
    Resolve {
        /// `host:port`.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// The first connection to a target failed, so the benchmark did not start.
    #[error("cannot connect to {target}: {reason}")]
    Unreachable {
        /// `scheme://host:port`.
        target: String,
        /// The connect, TLS or protocol error.
        reason: String,
    },
    /// TLS client configuration failed.
    #[error("tls setup: {0}")]
    Tls(String),
    /// A worker thread or its runtime could not be started.
    #[error("starting worker: {0}")]
    Runtime(String),
}
