//! Typed settings, built by `rampart-app` from `routes[].static*` and `routes[].minify`.

use std::{path::PathBuf, sync::Arc, time::Duration};

use regex::Regex;

/// The default pattern of fingerprinted file names (`app.3f2a9c1d.js`): a dot, at least
/// eight hex digits, a dot.
pub const DEFAULT_IMMUTABLE_PATTERN: &str = r"\.[0-9a-f]{8,}\.";

/// One route's static site: a route policy extension (`Arc<StaticSettings>`).
#[derive(Debug, Clone)]
pub struct StaticSettings {
    /// The canonical site root.
    pub root: PathBuf,
    /// The route's path prefix, removed from the request path before resolving (`/assets`
    /// + `/assets/app.js` -> `root/app.js`).
    pub prefix: String,
    /// File served for a directory (`""`: none).
    pub index: String,
    /// Allow symlinks whose target lies outside the root.
    pub follow_symlinks: bool,
    /// Serve `.br` / `.zst` / `.gz` sidecars when present and accepted.
    pub precompressed: bool,
    /// Names matching this get `Cache-Control: public, max-age=31536000, immutable`.
    pub immutable: Option<Regex>,
    /// `Cache-Control: public, max-age=N` for other files (`None`: no `Cache-Control`).
    pub max_age: Option<Duration>,
}

impl StaticSettings {
    /// Settings for `root` (must exist; it is canonicalised) with the defaults.
    pub fn new(root: impl Into<PathBuf>, prefix: &str) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(root.into())?;
        Ok(Self {
            root,
            prefix: prefix.trim_end_matches('/').to_string(),
            index: "index.html".into(),
            follow_symlinks: false,
            precompressed: true,
            immutable: Regex::new(DEFAULT_IMMUTABLE_PATTERN).ok(),
            max_age: Some(Duration::from_secs(3600)),
        })
    }
}

/// Content kinds the minifier knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MinifyKind {
    /// `text/html` (with inline `<style>` and `<script>`).
    Html,
    /// `text/css`.
    Css,
    /// `text/javascript`, `application/javascript`.
    Js,
    /// `application/json`, `*+json`.
    Json,
}

impl MinifyKind {
    /// Every kind.
    pub const ALL: [MinifyKind; 4] = [
        MinifyKind::Html,
        MinifyKind::Css,
        MinifyKind::Js,
        MinifyKind::Json,
    ];

    /// The config / label name.
    pub fn as_str(self) -> &'static str {
        match self {
            MinifyKind::Html => "html",
            MinifyKind::Css => "css",
            MinifyKind::Js => "js",
            MinifyKind::Json => "json",
        }
    }

    /// Parse a config name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind of a `Content-Type` value, if minifiable.
    pub fn of_content_type(ct: &str) -> Option<Self> {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/html" => Some(MinifyKind::Html),
            "text/css" => Some(MinifyKind::Css),
            "text/javascript" | "application/javascript" | "application/x-javascript" => {
                Some(MinifyKind::Js)
            }
            "application/json" => Some(MinifyKind::Json),
            e if e.starts_with("application/") && e.ends_with("+json") => Some(MinifyKind::Json),
            _ => None,
        }
    }
}

/// One route's minification: a route policy extension (`Arc<MinifyPolicy>`).
#[derive(Debug, Clone)]
pub struct MinifyPolicy {
    /// Kinds to minify.
    pub kinds: Vec<MinifyKind>,
    /// Larger bodies pass unchanged (the cache's `max_object_size`).
    pub max_size: u64,
    /// Counters, labelled by this route's name.
    pub route: Arc<str>,
}
