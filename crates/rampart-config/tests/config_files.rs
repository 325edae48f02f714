//! The example config parses and validates; every `bad/*.toml` fails with exactly the errors
//! its `# expect:` lines list (in order).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use rampart_config::{Overrides, load_file};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn example_config_is_valid_and_documents_every_default() {
    let path = root().join("../../examples/rampart.toml");
    let c = load_file(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    // The example states the defaults: it must equal the built-in defaults key by key.
    let defaults = rampart_config::Config::default();
    let a = serde_json::to_value(&c.server).unwrap();
    let b = serde_json::to_value(&defaults.server).unwrap();
    assert_eq!(
        a, b,
        "examples/rampart.toml [server] differs from the defaults"
    );
    assert_eq!(
        serde_json::to_value(&c.log).unwrap(),
        serde_json::to_value(&defaults.log).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&c.cache).unwrap(),
        serde_json::to_value(&defaults.cache).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&c.routes[0].cache).unwrap(),
        serde_json::to_value(rampart_config::RouteCacheConfig::default()).unwrap()
    );
    for (name, a, b) in [
        (
            "security_headers",
            serde_json::to_value(&c.security_headers).unwrap(),
            serde_json::to_value(&defaults.security_headers).unwrap(),
        ),
        (
            "ip_lists",
            serde_json::to_value(&c.ip_lists).unwrap(),
            serde_json::to_value(&defaults.ip_lists).unwrap(),
        ),
        (
            "bans",
            serde_json::to_value(&c.bans).unwrap(),
            serde_json::to_value(&defaults.bans).unwrap(),
        ),
        (
            "audit",
            serde_json::to_value(&c.audit).unwrap(),
            serde_json::to_value(&defaults.audit).unwrap(),
        ),
        (
            "compression",
            serde_json::to_value(&c.compression).unwrap(),
            serde_json::to_value(&defaults.compression).unwrap(),
        ),
        (
            "auth",
            serde_json::to_value(&c.auth).unwrap(),
            serde_json::to_value(&defaults.auth).unwrap(),
        ),
        (
            "routes.hygiene",
            serde_json::to_value(&c.routes[0].hygiene).unwrap(),
            serde_json::to_value(rampart_config::RouteHygieneConfig::default()).unwrap(),
        ),
        (
            "waf",
            serde_json::to_value(&c.waf).unwrap(),
            serde_json::to_value(&defaults.waf).unwrap(),
        ),
    ] {
        assert_eq!(
            a, b,
            "examples/rampart.toml [{name}] differs from the defaults"
        );
    }
    let r0 = &c.routes[0];
    assert_eq!(
        r0.static_options,
        rampart_config::StaticOptionsConfig::default()
    );
    assert_eq!(r0.static_dir, None);
    assert!(r0.minify.is_empty() && !r0.server_timing);
    let up = &c.upstreams[0];
    let dflt = rampart_config::UpstreamConfig::new(up.name.clone(), up.endpoints.clone());
    assert_eq!(
        serde_json::to_value(up).unwrap(),
        serde_json::to_value(&dflt).unwrap()
    );
}

#[test]
fn bad_configs_fail_with_their_expected_errors() {
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("tests/bad")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no # expect: line",
            path.display()
        );
        let errs = load_file(&path, &Overrides::default())
            .expect_err(&format!("{} should fail", path.display()));
        let got: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
        assert_eq!(got, expected, "{}", path.display());
        checked += 1;
    }
    assert!(
        checked >= 6,
        "expected the bad/*.toml corpus, found {checked}"
    );
}
