//! `[compression]` and `[routes.compression]`: response compression, generated ETags and
//! request-body decoding (issue 4, `docs/compression.md`).

use serde::{Deserialize, Serialize};

use crate::types::ByteSize;

/// `[compression]`: global defaults (on by default).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    /// Compress responses. Default `true`.
    pub enabled: bool,
    /// Codings offered, in server preference order (`br`, `zstd`, `gzip`, `deflate`).
    /// Default `["br", "zstd", "gzip", "deflate"]`.
    pub algorithms: Vec<String>,
    /// Smaller bodies go out as they are. Default `"1KiB"`.
    pub min_size: ByteSize,
    /// Media types worth compressing: `type/subtype`, `type/*` or a `+suffix`. Default: text,
    /// JSON, JavaScript, XML, SVG, wasm and uncompressed fonts (see `docs/compression.md`).
    pub content_types: Vec<String>,
    /// Levels for responses compressed as they stream (not cached).
    /// Default br 4, zstd 3, gzip 6, deflate 6.
    pub levels: LevelsConfig,
    /// Levels for variants made once per cached object, off the request path.
    /// Default br 9, zstd 12, gzip 9, deflate 9.
    pub stored_levels: LevelsConfig,
    /// Give cacheable responses without an `ETag` a strong one (hash of the body) when the
    /// cache stores them. Default `true`.
    pub generate_etag: bool,
    /// Decode request bodies sent with `Content-Encoding` (br, zstd, gzip, deflate).
    /// Default `false`.
    pub decompress_requests: bool,
    /// Cap on a decoded request body (a larger one gets 413: decompression bombs).
    /// Default `"8MiB"`.
    pub max_decompressed_size: ByteSize,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            algorithms: ["br", "zstd", "gzip", "deflate"].map(String::from).to_vec(),
            min_size: ByteSize::kib(1),
            content_types: DEFAULT_CONTENT_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            levels: LevelsConfig::default(),
            stored_levels: LevelsConfig::stored(),
            generate_etag: true,
            decompress_requests: false,
            max_decompressed_size: ByteSize::mib(8),
        }
    }
}

/// The default `content_types` (the same list as `rampart_compress::config::DEFAULT_TYPES`;
/// `rampart-app`'s `default_content_types_agree` test keeps the two equal).
pub const DEFAULT_CONTENT_TYPES: &[&str] = &[
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

/// Compression level per algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LevelsConfig {
    /// Brotli quality, 0-11.
    pub br: u32,
    /// zstd level, 1-22.
    pub zstd: i32,
    /// gzip level, 1-9.
    pub gzip: u32,
    /// deflate level, 1-9.
    pub deflate: u32,
}

impl Default for LevelsConfig {
    fn default() -> Self {
        Self {
            br: 4,
            zstd: 3,
            gzip: 6,
            deflate: 6,
        }
    }
}

impl LevelsConfig {
    /// Defaults of `stored_levels`.
    pub fn stored() -> Self {
        Self {
            br: 9,
            zstd: 12,
            gzip: 9,
            deflate: 9,
        }
    }
}

/// `[routes.compression]`: per-route overrides; an absent key takes the `[compression]` value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteCompressionConfig {
    /// Compress this route's responses. Default: `compression.enabled`.
    pub enabled: Option<bool>,
    /// Codings offered, in preference order. Default: `compression.algorithms`.
    pub algorithms: Option<Vec<String>>,
    /// Default: `compression.min_size`.
    pub min_size: Option<ByteSize>,
    /// Default: `compression.content_types`.
    pub content_types: Option<Vec<String>>,
    /// Default: `compression.generate_etag`.
    pub generate_etag: Option<bool>,
    /// Default: `compression.decompress_requests`.
    pub decompress_requests: Option<bool>,
}

/// Check `[compression]` and every `routes[].compression`.
pub(crate) fn validate(c: &crate::Config, err: &mut dyn FnMut(String, String)) {
    let g = &c.compression;
    check_algorithms("compression.algorithms", &g.algorithms, err);
    check_types("compression.content_types", &g.content_types, err);
    for (name, l) in [("levels", &g.levels), ("stored_levels", &g.stored_levels)] {
        if l.br > 11 {
            err(format!("compression.{name}.br"), "must be 0-11".into());
        }
        if !(1..=22).contains(&l.zstd) {
            err(format!("compression.{name}.zstd"), "must be 1-22".into());
        }
        if !(1..=9).contains(&l.gzip) {
            err(format!("compression.{name}.gzip"), "must be 1-9".into());
        }
        if !(1..=9).contains(&l.deflate) {
            err(format!("compression.{name}.deflate"), "must be 1-9".into());
        }
    }
    if g.max_decompressed_size.bytes() == 0 {
        err(
            "compression.max_decompressed_size".into(),
            "must be greater than 0".into(),
        );
    }
    for (i, r) in c.routes.iter().enumerate() {
        if let Some(a) = &r.compression.algorithms {
            check_algorithms(&format!("routes[{i}].compression.algorithms"), a, err);
        }
        if let Some(t) = &r.compression.content_types {
            check_types(&format!("routes[{i}].compression.content_types"), t, err);
        }
    }
}

const ALGORITHMS: [&str; 4] = ["br", "zstd", "gzip", "deflate"];

fn check_algorithms(path: &str, a: &[String], err: &mut dyn FnMut(String, String)) {
    for (j, name) in a.iter().enumerate() {
        if !ALGORITHMS.contains(&name.as_str()) {
            err(
                format!("{path}[{j}]"),
                format!("unknown algorithm \"{name}\" (use br, zstd, gzip, deflate)"),
            );
        } else if a[..j].contains(name) {
            err(format!("{path}[{j}]"), format!("\"{name}\" listed twice"));
        }
    }
}

fn check_types(path: &str, t: &[String], err: &mut dyn FnMut(String, String)) {
    for (j, p) in t.iter().enumerate() {
        let p = p.trim();
        let ok = if let Some(s) = p.strip_prefix('+') {
            !s.is_empty() && !s.contains('/')
        } else {
            matches!(p.split_once('/'), Some((a, b)) if !a.is_empty() && !b.is_empty()
                && !a.contains('*') && (b == "*" || !b.contains('*')))
        };
        if !ok {
            err(
                format!("{path}[{j}]"),
                format!("invalid media type pattern \"{p}\" (use type/subtype, type/* or +suffix)"),
            );
        }
    }
}
