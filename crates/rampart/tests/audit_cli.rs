//! `rampart audit report` on a small audit log, text and JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

const LOG: &str = r#"{"kind":"rate_limited","time":"2026-11-21T10:00:00Z","request_id":"a","client_ip":"203.0.113.7","route":"login","rule":"per_ip","reference":null,"details":""}
{"kind":"rate_limited","time":"2026-11-21T10:00:01Z","request_id":"b","client_ip":"203.0.113.7","route":"login","rule":"per_ip","reference":null,"details":""}
{"kind":"ban_created","time":"2026-11-21T10:00:02Z","request_id":null,"client_ip":"203.0.113.7","route":null,"rule":"login_flood","reference":null,"details":"banned for 15m"}
{"kind":"auth_failed","time":"2026-11-21T10:00:03Z","request_id":"c","client_ip":"198.51.100.2","route":"api","rule":"expired","reference":null,"details":""}
{"kind":"admin_action","time":"2026-11-21T10:00:04Z","request_id":null,"client_ip":null,"route":null,"rule":"reload","reference":null,"details":"config generation 2"}
"#;

#[test]
fn audit_report_text_and_json() {
    let dir = std::env::temp_dir().join(format!("rampart-audit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("audit.jsonl");
    std::fs::write(&file, LOG).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["audit", "report", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("5 events (0 malformed lines)"), "{text}");
    assert!(text.contains("       2  rate_limited"), "{text}");
    assert!(text.contains("       3  203.0.113.7"), "{text}");
    assert!(text.contains("       2  login"), "{text}");
    assert!(
        text.contains("ban_created  203.0.113.7  login_flood  banned for 15m"),
        "{text}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["audit", "report", "--format", "json", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["events"], 5);
    assert_eq!(v["by_kind"][0], serde_json::json!(["rate_limited", 2]));
    assert_eq!(v["top_ips"][0], serde_json::json!(["203.0.113.7", 3]));
    assert_eq!(v["bans"][0]["rule"], "login_flood");

    let missing = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["audit", "report", "--file"])
        .arg(dir.join("nope.jsonl"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(66));
    let _ = std::fs::remove_dir_all(&dir);
}
