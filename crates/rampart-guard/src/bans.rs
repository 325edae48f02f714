//! Bans: fail2ban inside the gateway.
//!
//! * [`BanList`] holds the active bans. The request path only reads a published snapshot
//!   (`ArcSwap<HashMap>`: one atomic load and one hash lookup); writers (auto-ban rules,
//!   the admin API, the sweeper) rebuild and publish it under a mutex. Bans are rare, reads
//!   are every request.
//! * [`BanRule`]s count events per IP in a sliding window ("5 responses with status 401 on
//!   route `login` within 1 minute", "10 WAF blocks", "20 rate-limit rejections"); reaching
//!   the threshold bans the IP.
//! * Escalation: each automatic ban of the same IP within `escalation_reset` doubles the ban
//!   time, up to `max_ban`.
//! * Expiry needs no task: a ban whose time is up is ignored by [`BanList::check`] at once;
//!   [`BanList::sweep`] (run by [`BanList::spawn_sweeper`]) only frees memory and updates the
//!   `rampart_bans_active` gauge.
//!
//! All durations use `tokio::time`, so tests pause and advance the clock.

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::time::Instant;

use crate::{
    events::{EventSink, SecurityEvent, SecurityEventKind, humantime_rfc3339},
    metrics::GuardMetrics,
};

/// What a ban rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanTrigger {
    /// Final responses with this status (e.g. 401, 404).
    Status(u16),
    /// Requests blocked by the WAF.
    WafBlock,
    /// Requests refused by a rate limit (429).
    RateLimited,
}

impl std::str::FromStr for BanTrigger {
    type Err = String;

    /// `status:<code>`, `waf_block` or `rate_limited`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "waf_block" => Ok(Self::WafBlock),
            "rate_limited" => Ok(Self::RateLimited),
            _ => s
                .strip_prefix("status:")
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (100..=599).contains(c))
                .map(Self::Status)
                .ok_or_else(|| {
                    format!("ban trigger {s:?}: use status:<100-599>, waf_block or rate_limited")
                }),
        }
    }
}

/// One automatic ban rule.
#[derive(Debug, Clone)]
pub struct BanRule {
    /// Rule name (metric label `reason`, audit `rule`).
    pub name: Arc<str>,
    /// What is counted.
    pub trigger: BanTrigger,
    /// Only count on this route (`None` = every route).
    pub route: Option<Arc<str>>,
    /// Events within `window` that trigger a ban (at least 1).
    pub threshold: u32,
    /// The sliding window.
    pub window: Duration,
    /// First ban duration (doubled on each repeat offence, up to [`BanSettings::max_ban`]).
    pub ban: Duration,
}

/// Settings of a [`BanList`].
#[derive(Debug, Clone)]
pub struct BanSettings {
    /// Automatic rules.
    pub rules: Vec<BanRule>,
    /// Cap on escalated (and manual) ban durations (default 7 days).
    pub max_ban: Duration,
    /// A repeat offence counts for escalation if the previous ban started less than this ago
    /// (default 24 h).
    pub escalation_reset: Duration,
    /// Maximum IPs tracked per rule for counting (default 100 000); the oldest are forgotten
    /// first when full.
    pub max_tracked: usize,
    /// Maximum simultaneous bans (default 1 000 000); when full, new automatic bans are
    /// skipped with a warning (manual bans still go in).
    pub max_bans: usize,
}

impl Default for BanSettings {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            max_ban: Duration::from_secs(7 * 86_400),
            escalation_reset: Duration::from_secs(86_400),
            max_tracked: 100_000,
            max_bans: 1_000_000,
        }
    }
}

#[derive(Debug, Clone)]
struct BanEntry {
    until: Instant,
    created: SystemTime,
    reason: Arc<str>,
    rule: Option<Arc<str>>,
    offence: u32,
}

/// A ban, as shown by the admin API (`GET /bans`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BanInfo {
    /// The banned address.
    pub ip: IpAddr,
    /// Why (`manual: <text>` or the rule name).
    pub reason: String,
    /// The rule that created it (`None` for manual bans).
    pub rule: Option<String>,
    /// When the ban started (RFC 3339).
    pub created_at: String,
    /// When it ends (RFC 3339).
    pub expires_at: String,
    /// Seconds left (rounded up).
    pub remaining_secs: u64,
    /// Offence number for escalation (1 = first ban).
    pub offence: u32,
}

/// The answer of [`BanList::check`] for a banned address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanHit {
    /// Why it is banned.
    pub reason: Arc<str>,
    /// Time left.
    pub remaining: Duration,
}

const COUNTER_SHARDS: usize = 16;

struct RuleCounter {
    shards: Vec<Mutex<HashMap<IpAddr, VecDeque<Instant>>>>,
}

struct Offence {
    count: u32,
    last: Instant,
}

struct Writer {
    bans: HashMap<IpAddr, BanEntry>,
    offences: HashMap<IpAddr, Offence>,
}

/// Active bans, automatic rules and the admin operations. Long-lived: keep one per process and
/// hand it to every config generation (update rules with [`BanList::set_settings`]).
pub struct BanList {
    snapshot: ArcSwap<HashMap<IpAddr, BanEntry>>,
    writer: Mutex<Writer>,
    settings: ArcSwap<BanSettings>,
    counters: ArcSwap<Vec<RuleCounter>>,
    hasher: RandomState,
    metrics: Option<GuardMetrics>,
    events: EventSink,
}

impl std::fmt::Debug for BanList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BanList")
            .field("active", &self.snapshot.load().len())
            .field("rules", &self.settings.load().rules.len())
            .finish_non_exhaustive()
    }
}

fn new_counters(n: usize) -> Vec<RuleCounter> {
    (0..n)
        .map(|_| RuleCounter {
            shards: (0..COUNTER_SHARDS).map(|_| Mutex::default()).collect(),
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BanList {
    /// An empty ban list with these rules.
    pub fn new(settings: BanSettings, metrics: Option<GuardMetrics>, events: EventSink) -> Self {
        let counters = new_counters(settings.rules.len());
        Self {
            snapshot: ArcSwap::from_pointee(HashMap::new()),
            writer: Mutex::new(Writer {
                bans: HashMap::new(),
                offences: HashMap::new(),
            }),
            settings: ArcSwap::from_pointee(settings),
            counters: ArcSwap::from_pointee(counters),
            hasher: RandomState::new(),
            metrics,
            events,
        }
    }

    /// Replace the rules (config reload). Active bans and offence history are kept; event
    /// counts restart.
    pub fn set_settings(&self, settings: BanSettings) {
        self.counters
            .store(Arc::new(new_counters(settings.rules.len())));
        self.settings.store(Arc::new(settings));
    }

    /// Whether any automatic rule is configured (when none is, statuses need not be recorded).
    pub fn has_rules(&self) -> bool {
        !self.settings.load().rules.is_empty()
    }

    /// Whether `ip` is banned now. Lock-free.
    pub fn check(&self, ip: IpAddr) -> Option<BanHit> {
        let snap = self.snapshot.load();
        if snap.is_empty() {
            return None;
        }
        let e = snap.get(&ip.to_canonical())?;
        let now = Instant::now();
        (e.until > now).then(|| BanHit {
            reason: e.reason.clone(),
            remaining: e.until - now,
        })
    }

    /// Ban `ip` for `duration` (capped at `max_ban`) by hand. Replaces any existing ban.
    pub fn ban(&self, ip: IpAddr, duration: Duration, reason: &str) -> BanInfo {
        let duration = duration.min(self.settings.load().max_ban);
        let ip = ip.to_canonical();
        let entry = BanEntry {
            until: Instant::now() + duration,
            created: SystemTime::now(),
            reason: format!("manual: {reason}").into(),
            rule: None,
            offence: 1,
        };
        let info = info(ip, &entry, Instant::now());
        {
            let mut w = lock(&self.writer);
            w.bans.insert(ip, entry);
            self.publish(&w);
        }
        if let Some(m) = &self.metrics {
            m.ban_created("manual");
        }
        let mut ev = SecurityEvent::new(SecurityEventKind::BanCreated)
            .rule("manual")
            .details(format!("{}s: {reason}", duration.as_secs()));
        ev.client_ip = Some(ip);
        self.events.emit(ev);
        info
    }

    /// Lift a ban. `true` if there was one. The offence history is kept (a released attacker
    /// that comes back still escalates).
    pub fn unban(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let removed = {
            let mut w = lock(&self.writer);
            let removed = w.bans.remove(&ip).is_some();
            if removed {
                self.publish(&w);
            }
            removed
        };
        if removed {
            let mut ev = SecurityEvent::new(SecurityEventKind::BanRemoved).rule("manual");
            ev.client_ip = Some(ip);
            self.events.emit(ev);
        }
        removed
    }

    /// Active bans, soonest-expiring last, for `GET /bans`.
    pub fn list(&self) -> Vec<BanInfo> {
        let now = Instant::now();
        let snap = self.snapshot.load();
        let mut out: Vec<BanInfo> = snap
            .iter()
            .filter(|(_, e)| e.until > now)
            .map(|(ip, e)| info(*ip, e, now))
            .collect();
        out.sort_by(|a, b| {
            b.remaining_secs
                .cmp(&a.remaining_secs)
                .then(a.ip.cmp(&b.ip))
        });
        out
    }

    /// Drop expired bans and old offence records; returns how many bans were dropped.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let reset = self.settings.load().escalation_reset;
        let mut w = lock(&self.writer);
        let before = w.bans.len();
        w.bans.retain(|_, e| e.until > now);
        let removed = before - w.bans.len();
        w.offences
            .retain(|_, o| now.saturating_duration_since(o.last) < reset);
        if removed > 0 {
            self.publish(&w);
        }
        drop(w);
        // Forget counting windows that are entirely in the past.
        let settings = self.settings.load();
        let counters = self.counters.load();
        for (rule, c) in settings.rules.iter().zip(counters.iter()) {
            for shard in &c.shards {
                lock(shard).retain(|_, q| {
                    q.back()
                        .is_some_and(|t| now.saturating_duration_since(*t) < rule.window)
                });
            }
        }
        removed
    }

    /// Sweep every `every` until the list is dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(list) = weak.upgrade() else { break };
                list.sweep();
            }
        })
    }

    /// Whether any rule counts `trigger` (cheap pre-check for the request path).
    pub fn counts(&self, trigger: BanTrigger) -> bool {
        self.settings
            .load()
            .rules
            .iter()
            .any(|r| r.trigger == trigger)
    }

    /// Record one event for `ip` on `route`. Returns the ban if this event triggered one.
    pub fn record(&self, ip: IpAddr, route: &str, trigger: BanTrigger) -> Option<BanInfo> {
        let settings = self.settings.load();
        if !settings.rules.iter().any(|r| r.trigger == trigger) {
            return None;
        }
        let ip = ip.to_canonical();
        let now = Instant::now();
        let counters = self.counters.load();
        let shard_idx = (self.hasher.hash_one(ip) as usize) % COUNTER_SHARDS;
        let mut triggered: Option<&BanRule> = None;
        for (rule, counter) in settings.rules.iter().zip(counters.iter()) {
            if rule.trigger != trigger || rule.route.as_deref().is_some_and(|r| r != route) {
                continue;
            }
            let Some(shard) = counter.shards.get(shard_idx) else {
                continue;
            };
            let mut map = lock(shard);
            if !map.contains_key(&ip) && map.len() > settings.max_tracked / COUNTER_SHARDS {
                evict_counts(&mut map, now, rule.window);
            }
            let q = map.entry(ip).or_default();
            while q
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= rule.window)
            {
                q.pop_front();
            }
            q.push_back(now);
            let threshold = rule.threshold.max(1) as usize;
            while q.len() > threshold {
                q.pop_front();
            }
            if q.len() >= threshold {
                map.remove(&ip);
                if triggered.is_none() {
                    triggered = Some(rule);
                }
            }
        }
        let rule = triggered?;
        self.auto_ban(ip, rule, &settings, now)
    }

    fn auto_ban(
        &self,
        ip: IpAddr,
        rule: &BanRule,
        settings: &BanSettings,
        now: Instant,
    ) -> Option<BanInfo> {
        let mut w = lock(&self.writer);
        if w.bans.get(&ip).is_some_and(|e| e.until > now) {
            return None; // already banned (events raced the ban)
        }
        if w.bans.len() >= settings.max_bans {
            tracing::warn!(%ip, rule = %rule.name, "ban list full; automatic ban skipped");
            return None;
        }
        let offence = match w.offences.get_mut(&ip) {
            Some(o) if now.saturating_duration_since(o.last) < settings.escalation_reset => {
                o.count = o.count.saturating_add(1);
                o.last = now;
                o.count
            }
            _ => {
                w.offences.insert(
                    ip,
                    Offence {
                        count: 1,
                        last: now,
                    },
                );
                1
            }
        };
        let factor = 1u32
            .checked_shl(offence.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let duration = rule
            .ban
            .checked_mul(factor)
            .unwrap_or(settings.max_ban)
            .min(settings.max_ban);
        let entry = BanEntry {
            until: now + duration,
            created: SystemTime::now(),
            reason: rule.name.clone(),
            rule: Some(rule.name.clone()),
            offence,
        };
        let info = info(ip, &entry, now);
        w.bans.insert(ip, entry);
        self.publish(&w);
        drop(w);
        if let Some(m) = &self.metrics {
            m.ban_created(&rule.name);
        }
        tracing::info!(%ip, rule = %rule.name, secs = duration.as_secs(), offence, "ip banned");
        let mut ev = SecurityEvent::new(SecurityEventKind::BanCreated)
            .rule(rule.name.as_ref())
            .details(format!("{}s, offence {offence}", duration.as_secs()));
        ev.client_ip = Some(ip);
        self.events.emit(ev);
        Some(info)
    }

    fn publish(&self, w: &Writer) {
        self.snapshot.store(Arc::new(w.bans.clone()));
        if let Some(m) = &self.metrics {
            m.bans_active()
                .set(i64::try_from(w.bans.len()).unwrap_or(i64::MAX));
        }
    }
}

fn evict_counts(map: &mut HashMap<IpAddr, VecDeque<Instant>>, now: Instant, window: Duration) {
    map.retain(|_, q| {
        q.back()
            .is_some_and(|t| now.saturating_duration_since(*t) < window)
    });
    if !map.is_empty() {
        // Still full of live counters: forget the one whose latest event is oldest, of a sample.
        let victim = map
            .iter()
            .take(8)
            .min_by_key(|(_, q)| q.back().copied())
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            map.remove(&ip);
        }
    }
}

fn info(ip: IpAddr, e: &BanEntry, now: Instant) -> BanInfo {
    let remaining = e.until.saturating_duration_since(now);
    BanInfo {
        ip,
        reason: e.reason.to_string(),
        rule: e.rule.as_ref().map(|r| r.to_string()),
        created_at: humantime_rfc3339(e.created),
        expires_at: humantime_rfc3339(SystemTime::now() + remaining),
        remaining_secs: remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0),
        offence: e.offence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn login_rule() -> BanRule {
        BanRule {
            name: "login_bruteforce".into(),
            trigger: BanTrigger::Status(401),
            route: Some("login".into()),
            threshold: 5,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(15 * 60),
        }
    }

    fn list() -> BanList {
        BanList::new(
            BanSettings {
                rules: vec![login_rule()],
                max_ban: Duration::from_secs(3600),
                ..Default::default()
            },
            None,
            EventSink::disabled(),
        )
    }

    #[test]
    fn triggers_parse() {
        assert_eq!("status:401".parse(), Ok(BanTrigger::Status(401)));
        assert_eq!("waf_block".parse(), Ok(BanTrigger::WafBlock));
        assert_eq!("rate_limited".parse(), Ok(BanTrigger::RateLimited));
        for bad in ["status:99", "status:x", "status:", "401", ""] {
            assert!(bad.parse::<BanTrigger>().is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn threshold_window_and_expiry() {
        let bans = list();
        let a = ip("198.51.100.7");
        // Four failures, spread out: not yet.
        for _ in 0..4 {
            assert!(bans.record(a, "login", BanTrigger::Status(401)).is_none());
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        // Other statuses, routes and IPs do not count.
        assert!(bans.record(a, "login", BanTrigger::Status(200)).is_none());
        assert!(bans.record(a, "other", BanTrigger::Status(401)).is_none());
        assert!(
            bans.record(ip("198.51.100.8"), "login", BanTrigger::Status(401))
                .is_none()
        );
        assert!(bans.check(a).is_none());
        // Fifth within 60 s of the first (at t=40): banned for 15 min.
        let info = bans.record(a, "login", BanTrigger::Status(401)).unwrap();
        assert_eq!(info.remaining_secs, 900);
        assert_eq!(info.offence, 1);
        assert_eq!(bans.check(a).unwrap().remaining, Duration::from_secs(900));
        // Released exactly after the ban, with no sweeper.
        tokio::time::advance(Duration::from_secs(900) - Duration::from_millis(1)).await;
        assert!(bans.check(a).is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(bans.check(a).is_none());
        assert_eq!(bans.sweep(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn sliding_window_forgets_old_events() {
        let bans = list();
        let a = ip("2001:db8::1");
        for _ in 0..4 {
            bans.record(a, "login", BanTrigger::Status(401));
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        // The four old ones left the window.
        for _ in 0..4 {
            assert!(bans.record(a, "login", BanTrigger::Status(401)).is_none());
        }
        assert!(bans.record(a, "login", BanTrigger::Status(401)).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn escalation_doubles_up_to_cap() {
        let bans = list();
        let a = ip("203.0.113.9");
        let mut durations = Vec::new();
        for _ in 0..4 {
            let mut got = None;
            for _ in 0..5 {
                got = bans.record(a, "login", BanTrigger::Status(401));
            }
            let info = got.expect("banned");
            durations.push(info.remaining_secs);
            tokio::time::advance(Duration::from_secs(info.remaining_secs)).await;
            assert!(bans.check(a).is_none());
        }
        // 15 min, 30 min, 60 min (cap 1 h), 60 min.
        assert_eq!(durations, vec![900, 1800, 3600, 3600]);
    }

    #[tokio::test(start_paused = true)]
    async fn escalation_resets_after_good_behaviour() {
        let bans = list();
        let a = ip("203.0.113.10");
        for _ in 0..5 {
            bans.record(a, "login", BanTrigger::Status(401));
        }
        tokio::time::advance(Duration::from_secs(86_400 + 1)).await;
        bans.sweep();
        let mut got = None;
        for _ in 0..5 {
            got = bans.record(a, "login", BanTrigger::Status(401));
        }
        assert_eq!(got.unwrap().remaining_secs, 900);
    }

    #[tokio::test(start_paused = true)]
    async fn manual_ban_unban_list() {
        let bans = list();
        let a = ip("192.0.2.1");
        let b = ip("::ffff:192.0.2.2");
        bans.ban(a, Duration::from_secs(60), "abuse report");
        bans.ban(b, Duration::from_secs(100 * 3600), "capped");
        let l = bans.list();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].ip, ip("192.0.2.2")); // canonicalised, longest first
        assert_eq!(l[0].remaining_secs, 3600); // capped at max_ban
        assert_eq!(l[1].reason, "manual: abuse report");
        let json = serde_json::to_value(&l[1]).unwrap();
        assert_eq!(json["ip"], "192.0.2.1");
        assert!(json["expires_at"].as_str().unwrap().ends_with('Z'));
        assert!(bans.check(ip("::ffff:192.0.2.1")).is_some());
        assert!(bans.unban(a));
        assert!(!bans.unban(a));
        assert!(bans.check(a).is_none());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(bans.list().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn counting_memory_is_bounded() {
        let bans = BanList::new(
            BanSettings {
                rules: vec![login_rule()],
                max_tracked: 160,
                ..Default::default()
            },
            None,
            EventSink::disabled(),
        );
        for i in 0..10_000u32 {
            bans.record(
                IpAddr::from(i.to_be_bytes()),
                "login",
                BanTrigger::Status(401),
            );
        }
        let counters = bans.counters.load();
        let tracked: usize = counters[0].shards.iter().map(|s| lock(s).len()).sum();
        assert!(tracked <= 160 + COUNTER_SHARDS, "{tracked}");
    }
}
