//! `[compression]` + `[routes.compression]` → the typed `rampart_compress::CompressPolicy` of
//! each route (the feature crate never sees the config schema).

use std::sync::Arc;

use rampart_compress::{Coding, CompressPolicy, ContentTypes, Levels};
use rampart_config::{CompressionConfig, LevelsConfig, RouteConfig};

fn levels(l: &LevelsConfig) -> Levels {
    Levels {
        br: l.br,
        zstd: l.zstd,
        gzip: l.gzip,
        deflate: l.deflate,
    }
}

/// The route's compression policy (validation already checked names and patterns).
pub fn route_policy(g: &CompressionConfig, r: &RouteConfig) -> Arc<CompressPolicy> {
    let rc = &r.compression;
    let algorithms = rc.algorithms.as_ref().unwrap_or(&g.algorithms);
    let types = rc.content_types.as_ref().unwrap_or(&g.content_types);
    let decompress = rc.decompress_requests.unwrap_or(g.decompress_requests);
    Arc::new(CompressPolicy {
        enabled: rc.enabled.unwrap_or(g.enabled),
        prefer: algorithms.iter().filter_map(|a| Coding::parse(a)).collect(),
        levels: levels(&g.levels),
        stored_levels: levels(&g.stored_levels),
        min_size: rc.min_size.unwrap_or(g.min_size).bytes(),
        types: ContentTypes::new(types.iter().map(String::as_str)),
        request_max: decompress.then_some(g.max_decompressed_size.bytes()),
    })
}

/// Whether the cache should give this route's stored responses a generated `ETag`.
pub fn generate_etag(g: &CompressionConfig, r: &RouteConfig) -> bool {
    r.compression.generate_etag.unwrap_or(g.generate_etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config's default `content_types` and the compression crate's own default are two
    /// lists (neither crate depends on the other); they must stay the same list.
    #[test]
    fn default_content_types_agree() {
        assert_eq!(
            rampart_config::compress::DEFAULT_CONTENT_TYPES,
            rampart_compress::config::DEFAULT_TYPES
        );
        let from_config = route_policy(&CompressionConfig::default(), &RouteConfig::default());
        assert_eq!(from_config.types, ContentTypes::default());
    }

    #[test]
    fn route_overrides_win() {
        let g = CompressionConfig::default();
        let mut r = RouteConfig::default();
        let p = route_policy(&g, &r);
        assert!(p.enabled);
        assert_eq!(p.prefer, Coding::ALL.to_vec());
        assert_eq!(p.min_size, 1024);
        assert!(p.request_max.is_none());
        assert!(generate_etag(&g, &r));
        r.compression.enabled = Some(false);
        r.compression.algorithms = Some(vec!["gzip".into()]);
        r.compression.generate_etag = Some(false);
        r.compression.decompress_requests = Some(true);
        let p = route_policy(&g, &r);
        assert!(!p.enabled);
        assert_eq!(p.prefer, vec![Coding::Gzip]);
        assert_eq!(p.request_max, Some(8 << 20));
        assert!(!generate_etag(&g, &r));
    }
}
