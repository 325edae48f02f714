//! Route keys of the static file service, minification and Server-Timing (issue 4 part B).
//!
//! ```toml
//! [[routes]]
//! name = "site"
//! path = "/"
//! static = "./public"          # serve this directory instead of an upstream
//! minify = ["html", "css", "js", "json"]
//! server_timing = false
//!
//! [routes.static_options]
//! index = "index.html"
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::duration;

/// The default `immutable_pattern`: fingerprinted names such as `app.3f2a9c1d.js`.
pub const DEFAULT_IMMUTABLE_PATTERN: &str = r"\.[0-9a-f]{8,}\.";

/// Content kinds `routes[].minify` accepts.
pub const MINIFY_KINDS: [&str; 4] = ["html", "css", "js", "json"];

/// `[routes.static_options]`: how a static route (`static = "dir"`) serves its files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticOptionsConfig {
    /// File served for a directory URL (`""`: none, such URLs are 404). Never a listing.
    /// Default `"index.html"`.
    pub index: String,
    /// Follow symlinks whose target lies outside the directory. Default `false`.
    pub follow_symlinks: bool,
    /// Serve `file.br` / `file.zst` / `file.gz` when present and accepted by the client.
    /// Default `true`.
    pub precompressed: bool,
    /// Remove the route's `path` prefix before looking up the file (`path = "/assets"`:
    /// `/assets/app.js` is `dir/app.js`). Default `true`.
    pub strip_prefix: bool,
    /// Regex on the file's path below the directory; matches get
    /// `Cache-Control: public, max-age=31536000, immutable` (`""`: off).
    /// Default `"\.[0-9a-f]{8,}\."`.
    pub immutable_pattern: String,
    /// `Cache-Control: public, max-age=…` of the other files. Default `"1h"`.
    #[serde(with = "duration")]
    pub max_age: Duration,
}

impl Default for StaticOptionsConfig {
    fn default() -> Self {
        Self {
            index: "index.html".into(),
            follow_symlinks: false,
            precompressed: true,
            strip_prefix: true,
            immutable_pattern: DEFAULT_IMMUTABLE_PATTERN.into(),
            max_age: Duration::from_secs(3600),
        }
    }
}

/// Checks of `routes[].static`, `static_options` and `minify` (called by
/// [`crate::validate::validate`]). The immutable pattern is compiled when the stack is
/// built (`rampart check` does that too).
pub(crate) fn validate_routes(c: &crate::Config, err: &mut impl FnMut(String, String)) {
    for (i, r) in c.routes.iter().enumerate() {
        if let Some(dir) = &r.static_dir {
            match std::fs::metadata(dir) {
                Err(e) => err(
                    format!("routes[{i}].static"),
                    format!("cannot read {}: {e}", dir.display()),
                ),
                Ok(m) if !m.is_dir() => err(
                    format!("routes[{i}].static"),
                    format!("{} is not a directory", dir.display()),
                ),
                Ok(_) => {}
            }
            let idx = &r.static_options.index;
            if idx.contains(['/', '\\']) || idx == "." || idx == ".." {
                err(
                    format!("routes[{i}].static_options.index"),
                    format!("{idx:?} must be a plain file name"),
                );
            }
        }
        for (j, k) in r.minify.iter().enumerate() {
            if !MINIFY_KINDS.contains(&k.as_str()) {
                err(
                    format!("routes[{i}].minify[{j}]"),
                    format!("{k:?} is not one of \"html\", \"css\", \"js\", \"json\""),
                );
            }
        }
    }
}
