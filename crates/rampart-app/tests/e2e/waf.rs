//! WAF end to end: blocking and detect-only routes, exclusions by rule id, by rule id +
//! target, by route and by client network (issue 6).

use rampart_testkit::{
    TestProxy, TestUpstream,
    client::{request, send},
};

use crate::admin_get;

/// A SQL injection in `q` (rule 242100, the tokenizer, and others).
const SQLI_Q: &str = "q=1%27%20OR%20%271%27%3D%271%27%20--%20";
/// The same payload in `password`.
const SQLI_PASSWORD: &str = "password=1%27%20OR%20%271%27%3D%271%27%20--%20";

/// Routes:
/// * `detect` (`/detect`): detect mode;
/// * `ids` (`/ids`): every rule that fires on the payload removed by id / id range;
/// * `target` (`/target`): every rule excluded from `ARGS:password` only;
/// * `all`: global exclusions only (`ARGS:password` for 10.0.0.0/8 clients, WAF off for
///   192.0.2.0/24).
fn config(ids: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n\
[trusted_proxies]\ncidrs = [\"127.0.0.1/32\"]\n\n\
[[upstreams]]\nname = \"app\"\nendpoints = [\"{{upstream}}\"]\n\n\
[[waf.exclusions]]\ntarget = \"ARGS:password\"\nclients = [\"10.0.0.0/8\"]\n\n\
[[waf.exclusions]]\nclients = [\"192.0.2.0/24\"]\n\n\
[[routes]]\nname = \"detect\"\npath = \"/detect\"\nupstream = \"app\"\n[routes.waf]\nmode = \"detect\"\n\n\
[[routes]]\nname = \"ids\"\npath = \"/ids\"\nupstream = \"app\"\n[[routes.waf.exclusions]]\nrule_ids = [{ids}]\n\n\
[[routes]]\nname = \"target\"\npath = \"/target\"\nupstream = \"app\"\n[[routes.waf.exclusions]]\nrule_ids = [\"200000-299999\"]\ntarget = \"ARGS:password\"\n\n\
[[routes]]\nname = \"all\"\nupstream = \"app\"\n"
    )
}

async fn status(px: &TestProxy, path: &str, client_ip: Option<&str>) -> u16 {
    let headers: Vec<(&str, &str)> = match client_ip {
        Some(ip) => vec![("x-forwarded-for", ip)],
        None => vec![],
    };
    send(px.addr(), request("GET", path, &headers, ""))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn waf_exclusions_by_id_target_route_and_client() {
    let up = TestUpstream::ok().await;
    // The rule ids the payload triggers, from the engine itself (so the test follows the rules).
    let engine = std::sync::Arc::new(rampart_waf::Engine::builtin().unwrap());
    let policy = rampart_waf::WafPolicy::new(engine.clone());
    let probe = rampart_waf::WafRequest::build(
        "GET",
        format!("/ids?{SQLI_Q}").as_bytes(),
        "HTTP/1.1",
        [(&b"host"[..], &b"localhost"[..])],
        None,
        &rampart_waf::Limits::default(),
    );
    let ids = engine.inspect(&probe, &policy, None).rule_ids();
    assert!(!ids.is_empty(), "the payload is an attack");
    let list: Vec<String> = ids.iter().map(u32::to_string).collect();
    let px = TestProxy::start(&config(&list.join(", ")), &up.url()).await;

    // Block mode (default) on `all`.
    assert_eq!(status(&px, &format!("/?{SQLI_Q}"), None).await, 403);
    assert_eq!(status(&px, "/?q=red+shoes", None).await, 200);
    // Detect-only route passes the attack.
    assert_eq!(status(&px, &format!("/detect?{SQLI_Q}"), None).await, 200);
    // By rule id (route exclusion): those rules are gone on `/ids` only.
    assert_eq!(status(&px, &format!("/ids?{SQLI_Q}"), None).await, 200);
    assert_eq!(status(&px, &format!("/?{SQLI_Q}"), None).await, 403);
    // By rule id range + target: `password` is not inspected on `/target`, `q` still is.
    assert_eq!(
        status(&px, &format!("/target?{SQLI_PASSWORD}"), None).await,
        200
    );
    assert_eq!(status(&px, &format!("/target?{SQLI_Q}"), None).await, 403);
    assert_eq!(status(&px, &format!("/?{SQLI_PASSWORD}"), None).await, 403);
    // By client network (global): target exclusion for 10/8 only, WAF off for 192.0.2/24.
    assert_eq!(
        status(&px, &format!("/?{SQLI_PASSWORD}"), Some("10.1.2.3")).await,
        200
    );
    assert_eq!(
        status(&px, &format!("/?{SQLI_Q}"), Some("10.1.2.3")).await,
        403
    );
    assert_eq!(
        status(&px, &format!("/?{SQLI_Q}"), Some("192.0.2.7")).await,
        200
    );
    assert_eq!(
        status(&px, &format!("/?{SQLI_Q}"), Some("198.51.100.1")).await,
        403
    );

    let (_, metrics) = admin_get(&px, "/metrics").await;
    assert!(
        metrics.contains("rampart_waf_requests_total{route=\"detect\",verdict=\"detect\"} 1"),
        "{metrics}"
    );
    assert!(px.shutdown().await);
}

#[tokio::test]
async fn waf_exclusion_with_an_unknown_target_is_a_config_error() {
    let toml = "[[upstreams]]\nname = \"app\"\nendpoints = [\"http://127.0.0.1:9\"]\n\n\
[[waf.exclusions]]\ntarget = \"NOPE:x\"\n\n\
[[routes]]\nname = \"all\"\nupstream = \"app\"\n";
    let config = rampart_config::load_str(toml, &rampart_config::Overrides::default()).unwrap();
    let shared = rampart_app::Shared::new(
        rampart_app::build::access_log_off(),
        &config.cache,
        rampart_app::build::events_off(),
    );
    let Err(errs) = rampart_app::build::build(&config, &shared) else {
        panic!("an unknown collection is refused");
    };
    let text = errs.to_string();
    assert!(text.contains("waf.exclusions[0].target"), "{text}");
}
