//! Loads the OWASP Core Rule Set from Debian's `modsecurity-crs` package when installed
//! (`/usr/share/modsecurity-crs`, or `RAMPART_CRS_PATH`), checks what the loader reports and
//! that the rules block attacks and pass clean requests. Skips, with a notice, when absent.

use std::{path::PathBuf, sync::Arc};

use rampart_waf::{Engine, Limits, Outcome, WafPolicy, WafRequest};

fn crs_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("RAMPART_CRS_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/modsecurity-crs"));
    if dir.join("rules").is_dir()
        || dir.is_dir() && dir.join("REQUEST-901-INITIALIZATION.conf").is_file()
    {
        Some(dir)
    } else {
        eprintln!("notice: OWASP CRS not found at {}, skipping", dir.display());
        None
    }
}

fn get(uri: &str) -> WafRequest {
    let headers: [(&[u8], &[u8]); 3] = [
        (b"Host", b"localhost"),
        (
            b"User-Agent",
            b"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
        ),
        (b"Accept", b"text/html"),
    ];
    WafRequest::build(
        "GET",
        uri.as_bytes(),
        "HTTP/1.1",
        headers,
        None,
        &Limits::default(),
    )
}

#[test]
fn loads_crs_and_blocks_attacks() {
    let Some(dir) = crs_dir() else { return };
    let engine = Engine::crs(&dir).expect("crs loads");
    let report = engine.report().clone();
    println!("{report}");
    assert!(report.rules > 300, "{report}");
    assert!(report.unsupported_directives.is_empty(), "{report}");
    // Only persistent collections, geo/rbl lookups and a few PCRE-only regexes are dropped.
    assert!(report.dropped_rules.len() < 40, "{report}");
    let policy = WafPolicy::new(Arc::new(engine));
    let e = &policy.engine;
    let clean = e.inspect(&get("/search?q=blue+jacket&page=2"), &policy, None);
    assert_eq!(clean.outcome, Outcome::Pass, "{clean:?}");
    for attack in [
        "/?id=1%27%20or%20%271%27=%271",
        "/?q=%3Cscript%3Ealert(1)%3C/script%3E",
        "/?f=../../../../etc/passwd",
        "/?c=;cat%20/etc/passwd",
    ] {
        let v = e.inspect(&get(attack), &policy, None);
        assert_eq!(v.outcome, Outcome::Block, "{attack}: {:?}", v.rule_ids());
        assert!(
            v.rule_ids().contains(&949110),
            "{attack}: {:?}",
            v.rule_ids()
        );
    }
}
