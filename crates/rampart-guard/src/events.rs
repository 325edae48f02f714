//! Security events for the audit log.
//!
//! Every refusal or notable decision of this crate (IP denied, ban created, banned request,
//! rate limited, auth failure, CSRF / CORS refusal) is emitted as a [`SecurityEvent`] to an
//! [`EventSink`]. The sink never blocks the request path: it `try_send`s into a bounded
//! `tokio::sync::mpsc` channel and counts what it had to drop. The audit log writer (owned by
//! `rampart-telemetry` / `rampart-app`) drains the receiver and serialises events as JSON lines.

use std::{net::IpAddr, sync::Arc, time::SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    /// Refused by an IP allow/deny list.
    IpDenied,
    /// Refused because the client IP is banned.
    BannedRequest,
    /// A ban was created (automatic rule or manual).
    BanCreated,
    /// A ban was lifted by an operator.
    BanRemoved,
    /// Refused by a rate limit (429).
    RateLimited,
    /// A rate limit in dry-run mode would have refused the request; it passed.
    RateLimitDryRun,
    /// Missing or invalid credentials (401).
    AuthFailed,
    /// Valid credentials without the required roles / claims (403).
    AuthForbidden,
    /// Refused by the CSRF guard (403).
    CsrfRejected,
    /// A CORS preflight from an origin that is not allowed (403).
    CorsRejected,
    /// Refused by request hygiene rules (method, query, headers).
    RequestRejected,
    /// Refused by the WAF (403).
    WafBlocked,
    /// The WAF would have refused the request; it passed (detect mode).
    WafDetected,
    /// An admin API action (`rule`: `purge`, `ban`, `unban`, `reload`, `reload_failed`).
    AdminAction,
}

/// One audit record. Serialises to a flat JSON object:
/// `{"kind":"rate_limited","time":"2026-01-01T00:00:00Z","request_id":"..","client_ip":"..",
/// "route":"login","rule":"per_ip","reference":null,"details":".."}`.
#[derive(Debug, Clone, Serialize)]
pub struct SecurityEvent {
    /// What happened.
    pub kind: SecurityEventKind,
    /// Wall-clock time of the event (RFC 3339, UTC).
    #[serde(serialize_with = "ser_time")]
    pub time: SystemTime,
    /// The request id, when the event is about a request.
    pub request_id: Option<String>,
    /// The client IP.
    pub client_ip: Option<IpAddr>,
    /// The route name.
    pub route: Option<Arc<str>>,
    /// The rule, limit or list that decided (`per_ip`, `deny_list`, `login_bruteforce`, ...).
    pub rule: Option<String>,
    /// The reference id returned to the client in a 403 body, if any.
    pub reference: Option<String>,
    /// Free-form detail (reason, ban duration, missing role...). Never contains secrets.
    pub details: String,
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime_rfc3339(*t))
}

/// RFC 3339 with second precision, UTC (`2026-01-01T00:00:00Z`).
pub(crate) fn humantime_rfc3339(t: SystemTime) -> String {
    // Civil-from-days (Howard Hinnant), to avoid a date crate for one format.
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

impl SecurityEventKind {
    /// The name written to the log (`rate_limited`, `auth_failed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IpDenied => "ip_denied",
            Self::BannedRequest => "banned_request",
            Self::BanCreated => "ban_created",
            Self::BanRemoved => "ban_removed",
            Self::RateLimited => "rate_limited",
            Self::RateLimitDryRun => "rate_limit_dry_run",
            Self::AuthFailed => "auth_failed",
            Self::AuthForbidden => "auth_forbidden",
            Self::CsrfRejected => "csrf_rejected",
            Self::CorsRejected => "cors_rejected",
            Self::RequestRejected => "request_rejected",
            Self::WafBlocked => "waf_blocked",
            Self::WafDetected => "waf_detected",
            Self::AdminAction => "admin_action",
        }
    }
}

impl SecurityEvent {
    /// A new event of `kind`, stamped now, with every optional field empty.
    pub fn new(kind: SecurityEventKind) -> Self {
        Self {
            kind,
            time: SystemTime::now(),
            request_id: None,
            client_ip: None,
            route: None,
            rule: None,
            reference: None,
            details: String::new(),
        }
    }

    /// Fill request id, client ip and route from a request's extensions.
    pub fn from_request<B>(kind: SecurityEventKind, req: &http::Request<B>) -> Self {
        let mut ev = Self::new(kind);
        let ext = req.extensions();
        ev.request_id = ext
            .get::<rampart_core::RequestId>()
            .map(|r| r.as_str().to_owned());
        ev.client_ip = ext.get::<rampart_core::ClientIp>().map(|c| c.0);
        ev.route = ext
            .get::<Arc<rampart_core::RoutePolicy>>()
            .map(|p| p.name.clone());
        ev
    }

    /// Set the rule.
    pub fn rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Set the details.
    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Set the reference id.
    pub fn reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }
}

/// Where layers send their events: a bounded channel, never awaited on the request path.
#[derive(Debug, Clone, Default)]
pub struct EventSink {
    tx: Option<mpsc::Sender<SecurityEvent>>,
    dropped: prometheus_client::metrics::counter::Counter,
}

impl EventSink {
    /// A sink and the receiver the audit writer drains. `capacity` bounds memory; when full,
    /// events are dropped and counted ([`EventSink::dropped`]).
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<SecurityEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                tx: Some(tx),
                dropped: Default::default(),
            },
            rx,
        )
    }

    /// A sink that discards everything (audit log disabled).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Emit without waiting. A full or closed channel drops the event and counts it.
    pub fn emit(&self, event: SecurityEvent) {
        if let Some(tx) = &self.tx
            && tx.try_send(event).is_err()
        {
            self.dropped.inc();
        }
    }

    /// Events dropped because the channel was full or closed.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// The dropped-events counter (registered as `rampart_audit_dropped_total`).
    pub fn dropped_counter(&self) -> prometheus_client::metrics::counter::Counter {
        self.dropped.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn serialises_flat_json() {
        let mut ev = SecurityEvent::new(SecurityEventKind::RateLimited)
            .rule("per_ip")
            .details("limit 5/60s");
        ev.time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        ev.client_ip = Some("192.0.2.1".parse().unwrap());
        let v: serde_json::Value = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["kind"], "rate_limited");
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
        assert_eq!(v["client_ip"], "192.0.2.1");
        assert_eq!(v["rule"], "per_ip");
        assert!(v["request_id"].is_null());
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(
            humantime_rfc3339(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00Z"
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // leap day 2000
        assert_eq!(humantime_rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[tokio::test]
    async fn full_channel_drops_and_counts() {
        let (sink, mut rx) = EventSink::channel(1);
        sink.emit(SecurityEvent::new(SecurityEventKind::IpDenied));
        sink.emit(SecurityEvent::new(SecurityEventKind::IpDenied));
        assert_eq!(sink.dropped(), 1);
        assert_eq!(rx.recv().await.unwrap().kind, SecurityEventKind::IpDenied);
        EventSink::disabled().emit(SecurityEvent::new(SecurityEventKind::IpDenied));
    }
}
