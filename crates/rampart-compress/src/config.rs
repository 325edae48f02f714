//! Typed settings of the compression layer (built by `rampart-app` from `[compression]` and
//! `[routes.compression]`; this crate never sees the TOML).

use crate::coding::{Coding, Levels};

/// The per-route policy, put in the route's extensions as `Arc<CompressPolicy>`.
#[derive(Debug, Clone)]
pub struct CompressPolicy {
    /// Compress responses of this route.
    pub enabled: bool,
    /// Codings offered, in server preference order (ties in client weight go to the first).
    pub prefer: Vec<Coding>,
    /// Levels for streaming compression (responses not stored in the cache).
    pub levels: Levels,
    /// Levels for variants made once for a stored entry (off the request path).
    pub stored_levels: Levels,
    /// Smaller bodies are sent as they are.
    pub min_size: u64,
    /// Media types worth compressing.
    pub types: ContentTypes,
    /// Decode `Content-Encoding` request bodies (br, zstd, gzip, deflate) up to this many
    /// decoded bytes; `None`: request bodies pass as they are.
    pub request_max: Option<u64>,
}

impl Default for CompressPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            prefer: Coding::ALL.to_vec(),
            levels: Levels::STREAM,
            stored_levels: Levels::STORED,
            min_size: 1024,
            types: ContentTypes::default(),
            request_max: None,
        }
    }
}

/// An allow-list of media types: `type/subtype` exactly, `type/*`, or a structured-syntax
/// suffix `+json` (any `*/*+json`). Parameters (`; charset=utf-8`) are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentTypes(Vec<Box<str>>);

/// The default allow-list: text, JSON, JavaScript, XML, SVG, wasm, uncompressed fonts.
pub const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/xhtml+xml",
    "application/wasm",
    "application/x-ndjson",
    "application/graphql-response+json",
    "+json",
    "+xml",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/bmp",
    "font/ttf",
    "font/otf",
    "font/collection",
    "application/vnd.ms-fontobject",
    "application/x-font-ttf",
    "application/x-font-opentype",
];

impl Default for ContentTypes {
    fn default() -> Self {
        Self::new(DEFAULT_TYPES.iter().copied())
    }
}

impl ContentTypes {
    /// From patterns (lowercased).
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Self {
        Self(
            patterns
                .into_iter()
                .map(|p| p.trim().to_ascii_lowercase().into_boxed_str())
                .collect(),
        )
    }

    /// Whether a pattern is well formed (`a/b`, `a/*`, `+suffix`).
    pub fn valid_pattern(p: &str) -> bool {
        let p = p.trim();
        if let Some(s) = p.strip_prefix('+') {
            return !s.is_empty() && !s.contains('/');
        }
        matches!(p.split_once('/'), Some((a, b)) if !a.is_empty() && !b.is_empty() && !a.contains('*') && (b == "*" || !b.contains('*')))
    }

    /// Whether a `Content-Type` value is allowed.
    pub fn matches(&self, content_type: &str) -> bool {
        let mt = content_type.split(';').next().unwrap_or("").trim();
        let Some((ty, sub)) = mt.split_once('/') else {
            return false;
        };
        self.0.iter().any(|p| {
            if let Some(suffix) = p.strip_prefix('+') {
                return sub
                    .rsplit_once('+')
                    .is_some_and(|(_, s)| s.eq_ignore_ascii_case(suffix));
            }
            match p.split_once('/') {
                Some((pt, "*")) => pt.eq_ignore_ascii_case(ty),
                Some(_) => p.eq_ignore_ascii_case(mt),
                None => false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let t = ContentTypes::default();
        for yes in [
            "text/html",
            "text/css; charset=utf-8",
            "application/json",
            "APPLICATION/JSON",
            "application/problem+json",
            "application/atom+xml",
            "image/svg+xml",
            "application/wasm",
            "font/ttf",
        ] {
            assert!(t.matches(yes), "{yes}");
        }
        for no in [
            "image/png",
            "font/woff2",
            "application/zip",
            "application/octet-stream",
            "video/mp4",
            "",
            "json",
        ] {
            assert!(!t.matches(no), "{no}");
        }
        assert!(ContentTypes::valid_pattern("text/*"));
        assert!(ContentTypes::valid_pattern("+json"));
        assert!(!ContentTypes::valid_pattern("*/json"));
        assert!(!ContentTypes::valid_pattern("text"));
    }
}
