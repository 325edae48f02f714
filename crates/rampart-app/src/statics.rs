//! Config -> typed policies for static routes, minification and Server-Timing
//! (`routes[].static`, `routes[].static_options`, `routes[].minify`, `routes[].server_timing`).

use std::sync::Arc;

use rampart_config::{Config, ConfigError, RouteConfig};
use rampart_core::RoutePolicy;
use rampart_static::{MinifyKind, MinifyPolicy, StaticSettings};

use crate::layers::server_timing::ServerTimingOn;

/// Which of the optional layers some route needs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Needs {
    /// A route serves a directory.
    pub static_files: bool,
    /// A route minifies.
    pub minify: bool,
    /// A route sends `Server-Timing`.
    pub server_timing: bool,
}

impl Needs {
    /// What `config`'s routes ask for.
    pub fn of(config: &Config) -> Self {
        Self {
            static_files: config.routes.iter().any(|r| r.static_dir.is_some()),
            minify: config.routes.iter().any(|r| !r.minify.is_empty()),
            server_timing: config.routes.iter().any(|r| r.server_timing),
        }
    }
}

/// Put route `i`'s static, minify and Server-Timing policies into `policy`.
pub fn route_policies(
    i: usize,
    r: &RouteConfig,
    config: &Config,
    policy: &mut RoutePolicy,
    errors: &mut Vec<ConfigError>,
) {
    if let Some(dir) = &r.static_dir {
        let o = &r.static_options;
        let prefix = if o.strip_prefix { r.path.as_str() } else { "" };
        match StaticSettings::new(dir, prefix) {
            Ok(mut s) => {
                s.index = o.index.clone();
                s.follow_symlinks = o.follow_symlinks;
                s.precompressed = o.precompressed;
                s.max_age = Some(o.max_age);
                s.immutable = None;
                if !o.immutable_pattern.is_empty() {
                    match regex::Regex::new(&o.immutable_pattern) {
                        Ok(re) => s.immutable = Some(re),
                        Err(e) => errors.push(ConfigError::new(
                            format!("routes[{i}].static_options.immutable_pattern"),
                            format!("invalid regex: {e}"),
                        )),
                    }
                }
                policy.extensions.insert(Arc::new(s));
            }
            Err(e) => errors.push(ConfigError::new(
                format!("routes[{i}].static"),
                format!("cannot open {}: {e}", dir.display()),
            )),
        }
    }
    if !r.minify.is_empty() {
        let kinds: Vec<MinifyKind> = r
            .minify
            .iter()
            .filter_map(|k| MinifyKind::parse(k))
            .collect();
        policy.extensions.insert(Arc::new(MinifyPolicy {
            kinds,
            max_size: config.cache.max_object_size.bytes(),
            route: policy.name.clone(),
        }));
    }
    if r.server_timing {
        policy.extensions.insert(ServerTimingOn);
    }
}

/// The `minify` section of `/stats`.
pub fn stats_json(m: &rampart_static::MinifyMetrics) -> serde_json::Value {
    let st = m.stats();
    let saved: serde_json::Map<String, serde_json::Value> = MinifyKind::ALL
        .iter()
        .zip(st.saved_bytes)
        .map(|(k, n)| (k.as_str().to_string(), n.into()))
        .collect();
    serde_json::json!({
        "saved_bytes": st.saved_bytes.iter().sum::<u64>(),
        "saved_bytes_by_kind": saved,
        "minified": st.minified,
        "passthrough": st.passthrough,
    })
}
