//! `rampart audit report`: a summary of an audit log (JSON lines): events by kind, top client
//! IPs, top routes, bans, as text or JSON.

use std::{collections::HashMap, io::BufRead};

use serde::Serialize;

/// How many IPs / routes the "top" lists show.
pub const TOP: usize = 10;

/// One ban seen in the log.
#[derive(Debug, Clone, Serialize)]
pub struct BanLine {
    /// Event time.
    pub time: String,
    /// The banned (or released) address.
    pub ip: String,
    /// `ban_created` or `ban_removed`.
    pub kind: String,
    /// Rule name / reason.
    pub rule: String,
    /// Details (duration, ...).
    pub details: String,
}

/// The summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// Events read.
    pub events: u64,
    /// Lines that were not audit events.
    pub malformed: u64,
    /// Time of the first and last event.
    pub first: Option<String>,
    /// See `first`.
    pub last: Option<String>,
    /// Count per kind, largest first.
    pub by_kind: Vec<(String, u64)>,
    /// Client IPs with most events, largest first.
    pub top_ips: Vec<(String, u64)>,
    /// Routes with most events, largest first.
    pub top_routes: Vec<(String, u64)>,
    /// Bans created and removed, in log order.
    pub bans: Vec<BanLine>,
}

fn sorted(m: HashMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// Read JSON lines from `input` and summarise them.
pub fn summarize(input: impl BufRead) -> std::io::Result<AuditReport> {
    let mut r = AuditReport::default();
    let (mut kinds, mut ips, mut routes) = (HashMap::new(), HashMap::new(), HashMap::new());
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            r.malformed += 1;
            continue;
        };
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let Some(kind) = s("kind") else {
            r.malformed += 1;
            continue;
        };
        r.events += 1;
        if let Some(t) = s("time") {
            if r.first.is_none() {
                r.first = Some(t.clone());
            }
            r.last = Some(t);
        }
        if let Some(ip) = s("client_ip") {
            *ips.entry(ip).or_insert(0) += 1;
        }
        if let Some(route) = s("route") {
            *routes.entry(route).or_insert(0) += 1;
        }
        if kind == "ban_created" || kind == "ban_removed" {
            r.bans.push(BanLine {
                time: s("time").unwrap_or_default(),
                ip: s("client_ip").unwrap_or_default(),
                kind: kind.clone(),
                rule: s("rule").unwrap_or_default(),
                details: s("details").unwrap_or_default(),
            });
        }
        *kinds.entry(kind).or_insert(0) += 1;
    }
    r.by_kind = sorted(kinds, usize::MAX);
    r.top_ips = sorted(ips, TOP);
    r.top_routes = sorted(routes, TOP);
    Ok(r)
}

impl AuditReport {
    /// Human-readable text.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} events ({} malformed lines), {} .. {}",
            self.events,
            self.malformed,
            self.first.as_deref().unwrap_or("-"),
            self.last.as_deref().unwrap_or("-")
        );
        let table = |o: &mut String, title: &str, rows: &[(String, u64)]| {
            let _ = writeln!(o, "\n{title}:");
            if rows.is_empty() {
                let _ = writeln!(o, "  (none)");
            }
            for (k, n) in rows {
                let _ = writeln!(o, "  {n:>8}  {k}");
            }
        };
        table(&mut o, "events by kind", &self.by_kind);
        table(&mut o, "top client ips", &self.top_ips);
        table(&mut o, "top routes", &self.top_routes);
        let _ = writeln!(o, "\nbans:");
        if self.bans.is_empty() {
            let _ = writeln!(o, "  (none)");
        }
        for b in &self.bans {
            let _ = writeln!(
                o,
                "  {}  {:<11}  {}  {}  {}",
                b.time, b.kind, b.ip, b.rule, b.details
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counts_kinds_ips_routes_and_bans() {
        let log = r#"{"kind":"rate_limited","time":"2026-01-01T00:00:00Z","client_ip":"10.0.0.1","route":"api"}
{"kind":"rate_limited","time":"2026-01-01T00:00:01Z","client_ip":"10.0.0.1","route":"api"}
not json
{"kind":"ban_created","time":"2026-01-01T00:00:02Z","client_ip":"10.0.0.1","rule":"flood","details":"15m"}
{"kind":"auth_failed","time":"2026-01-01T00:00:03Z","client_ip":"10.0.0.2","route":"login"}
"#;
        let r = summarize(log.as_bytes()).unwrap();
        assert_eq!(r.events, 4);
        assert_eq!(r.malformed, 1);
        assert_eq!(r.by_kind[0], ("rate_limited".to_string(), 2));
        assert_eq!(r.top_ips[0], ("10.0.0.1".to_string(), 3));
        assert_eq!(r.top_routes[0], ("api".to_string(), 2));
        assert_eq!(r.bans.len(), 1);
        assert_eq!(r.first.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(r.last.as_deref(), Some("2026-01-01T00:00:03Z"));
        let t = r.to_text();
        assert!(t.contains("top client ips"), "{t}");
        assert!(t.contains("10.0.0.1  flood  15m"), "{t}");
    }
}
