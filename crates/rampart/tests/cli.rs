//! The command line as a user runs it: the real binary, exit codes and messages.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn rampart() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn version_and_help() {
    let out = rampart().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = rampart().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Examples:") && help.contains("rampart run --upstream"),
        "{help}"
    );
}

#[test]
fn check_accepts_the_example_and_refuses_bad_configs_with_64() {
    let ok = rampart()
        .args(["check", "--config"])
        .arg(root().join("examples/rampart.toml"))
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = rampart()
        .args(["check", "--config"])
        .arg(root().join("crates/rampart-config/tests/bad/unknown_upstream.toml"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("routes[1].upstream: unknown upstream \"apl\"; did you mean \"api\"? (line 17, column 12)"), "{err}");
    let missing = rampart()
        .args(["check", "--config", "/nonexistent/rampart.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent/rampart.toml")
    );
}

#[test]
fn run_without_upstream_or_config_is_a_clear_error() {
    let out = rampart().arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --upstream URL or --config FILE"));
    let out = rampart()
        .args(["run", "--upstream", "ftp://x", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scheme must be http:// or https://"));
    let out = rampart()
        .args(["run", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");
}

#[tokio::test]
async fn purge_command_talks_to_the_admin_api() {
    let up = rampart_testkit::TestUpstream::start(|_| async {
        rampart_testkit::response(200, "v", &[("cache-control", "public, max-age=600")])
    })
    .await;
    let toml = "[[upstreams]]\nname = \"app\"\nendpoints = [\"{upstream}\"]\n[[routes]]\nname = \"all\"\nupstream = \"app\"\n";
    let px = rampart_testkit::TestProxy::start(toml, &up.url()).await;
    rampart_testkit::client::get(px.addr(), "/x").await;
    let admin = format!("http://{}", px.admin());
    let out = tokio::task::spawn_blocking(move || {
        rampart()
            .args([
                "purge",
                "--all",
                "--admin",
                &admin,
                "--token",
                "test-admin-token-0123456789",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "{\"purged\":1}"
    );
    let admin = format!("http://{}", px.admin());
    let out = tokio::task::spawn_blocking(move || {
        rampart()
            .args([
                "purge",
                "--all",
                "--admin",
                &admin,
                "--token",
                "wrong-token",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = rampart()
        .args(["purge", "--admin", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "one of --url/--prefix/--tag/--all is required"
    );
}

#[test]
fn waf_test_prints_a_verdict_per_request() {
    use std::io::Write;
    let mut child = rampart()
        .args(["waf", "test", "--config"])
        .arg(root().join("examples/rampart.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"key\":\"a\",\"value\":\"1' OR '1'='1' --\"}\n{\"key\":\"b\",\"value\":\"red shoes\"}\nnot json\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("\tblock\t"), "{text}");
    assert!(lines[1].contains("\tpass\t"), "{text}");
    assert!(lines[2].contains("invalid"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("3 requests: 1 pass, 1 block, 0 detect, 1 invalid")
    );
    let bad = rampart()
        .args(["waf", "test", "--config"])
        .arg(root().join("examples/rampart.toml"))
        .args(["--route", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
}
