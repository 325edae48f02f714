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
pub struct ContentTypes(Vec<Pattern>);

/// One compiled allow-list entry (lowercase bytes), so a response's type is matched without
/// re-parsing the patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `type/subtype`.
    Exact(Box<[u8]>),
    /// `type/*`: the type.
    AnySubtype(Box<[u8]>),
    /// `+suffix`: the suffix.
    Suffix(Box<[u8]>),
    /// Malformed (refused by config validation): matches nothing.
    Never,
}

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
    /// From patterns (case does not matter).
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Self {
        let compile = |p: &str| {
            let p = p.trim().to_ascii_lowercase();
            let bytes = |s: &str| s.as_bytes().into();
            if let Some(suffix) = p.strip_prefix('+') {
                return Pattern::Suffix(bytes(suffix));
            }
            match p.split_once('/') {
                Some((ty, "*")) => Pattern::AnySubtype(bytes(ty)),
                Some(_) => Pattern::Exact(bytes(&p)),
                None => Pattern::Never,
            }
        };
        Self(patterns.into_iter().map(compile).collect())
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
        let ct = content_type.as_bytes();
        let end = ct.iter().position(|&b| b == b';').unwrap_or(ct.len());
        let mt = ct[..end].trim_ascii();
        let Some(slash) = mt.iter().position(|&b| b == b'/') else {
            return false;
        };
        let (ty, sub) = (&mt[..slash], &mt[slash + 1..]);
        let suffix = sub.iter().rposition(|&b| b == b'+').map(|i| &sub[i + 1..]);
        self.0.iter().any(|p| match p {
            Pattern::Exact(e) => e.eq_ignore_ascii_case(mt),
            Pattern::AnySubtype(t) => t.eq_ignore_ascii_case(ty),
            Pattern::Suffix(s) => suffix.is_some_and(|x| s.eq_ignore_ascii_case(x)),
            Pattern::Never => false,
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
            "  text/plain ; charset=utf-8",
            "application/vnd.api+JSON",
        ] {
            assert!(t.matches(yes), "{yes}");
        }
        let custom = ContentTypes::new(["Application/X-Custom", "+YAML", "font/*", "broken"]);
        assert!(custom.matches("application/x-custom;v=1"));
        assert!(custom.matches("application/vnd.thing+yaml"));
        assert!(custom.matches("FONT/woff2"));
        assert!(!custom.matches("application/x-custom2"));
        assert!(
            !custom.matches("application/yaml"),
            "+yaml is a suffix, not a subtype"
        );
        assert!(!custom.matches("broken"));
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
