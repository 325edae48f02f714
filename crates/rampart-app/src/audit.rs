//! The audit log: security events as JSON lines, written by a background task.
//!
//! Events arrive through rampart-guard's bounded `EventSink` (a full queue drops and counts;
//! the request path never waits). On shutdown the writer drains everything still queued and
//! flushes before the process exits, so no accepted event is lost on SIGTERM. When the queue
//! overflowed, the writer logs how many events were dropped (`rampart_audit_dropped_total`
//! counts them).
//!
//! A file log is rotated by size: `audit.jsonl` -> `audit.jsonl.1` -> ... -> `audit.jsonl.<keep>`
//! (the oldest deleted). The most recent [`RECENT`] events are also kept in memory for
//! `GET /audit` on the admin API ([`AuditRecent`]).

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use rampart_guard::{EventSink, GuardMetrics, SecurityEvent};
use tokio::{
    io::AsyncWriteExt,
    sync::{Notify, mpsc},
};

/// Events kept in memory for `GET /audit`.
pub const RECENT: usize = 10_000;

/// The most recent events, newest last (bounded by [`RECENT`]).
#[derive(Clone, Default)]
pub struct AuditRecent(Arc<Mutex<VecDeque<SecurityEvent>>>);

/// A `GET /audit` query.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    /// Only events at or after this time.
    pub since: Option<SystemTime>,
    /// Only events of this kind (`rate_limited`, `auth_failed`, ...).
    pub kind: Option<String>,
    /// At most this many (the newest). Default 100.
    pub limit: Option<usize>,
}

impl AuditRecent {
    fn push(&self, ev: &SecurityEvent) {
        if let Ok(mut q) = self.0.lock() {
            if q.len() >= RECENT {
                q.pop_front();
            }
            q.push_back(ev.clone());
        }
    }

    /// Events matching `q`, oldest first.
    pub fn query(&self, q: &AuditQuery) -> Vec<SecurityEvent> {
        let limit = q.limit.unwrap_or(100).min(RECENT);
        let Ok(all) = self.0.lock() else {
            return Vec::new();
        };
        let mut out: Vec<SecurityEvent> = all
            .iter()
            .rev()
            .filter(|e| q.since.is_none_or(|s| e.time >= s))
            .filter(|e| q.kind.as_deref().is_none_or(|k| e.kind.as_str() == k))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// `stdout`, `off`, or a file appended to.
    pub path: String,
    /// Rotate a file log before it grows past this many bytes (0 = never).
    pub max_size: u64,
    /// Rotated files kept.
    pub keep: usize,
}

/// The running writer.
pub struct AuditTask {
    handle: Option<tokio::task::JoinHandle<()>>,
    stop: Arc<Notify>,
    recent: AuditRecent,
}

impl AuditTask {
    /// The in-memory tail for `GET /audit`.
    pub fn recent(&self) -> AuditRecent {
        self.recent.clone()
    }

    /// Write every queued event, flush, and stop.
    pub async fn finish(self) {
        self.stop.notify_one();
        if let Some(h) = self.handle {
            let _ = h.await;
        }
    }
}

/// The writer's view of the sink and the metrics.
pub struct AuditContext {
    /// The sink feeding `rx` (for its dropped counter).
    pub sink: EventSink,
    /// `rampart_audit_events_total`.
    pub metrics: Option<GuardMetrics>,
}

/// Start writing `rx` as `s` says.
pub fn start(
    s: &AuditSettings,
    mut rx: mpsc::Receiver<SecurityEvent>,
    ctx: AuditContext,
) -> std::io::Result<AuditTask> {
    let stop = Arc::new(Notify::new());
    let recent = AuditRecent::default();
    let handle = match s.path.as_str() {
        "off" | "" => {
            // Keep draining so senders never see a full queue.
            let st = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        ev = rx.recv() => if ev.is_none() { return },
                        _ = st.notified() => return,
                    }
                }
            })
        }
        "stdout" | "-" => {
            let out = Output::Stdout(tokio::io::BufWriter::new(tokio::io::stdout()));
            let w = Writer::new(out, ctx, recent.clone());
            tokio::spawn(w.run(rx, stop.clone()))
        }
        file => {
            let p = PathBuf::from(file);
            let (f, size) = open_append(&p)?;
            let out = Output::File {
                file: tokio::io::BufWriter::new(f),
                path: p,
                size,
                max_size: s.max_size,
                keep: s.keep,
            };
            let w = Writer::new(out, ctx, recent.clone());
            tokio::spawn(w.run(rx, stop.clone()))
        }
    };
    Ok(AuditTask {
        handle: Some(handle),
        stop,
        recent,
    })
}

fn open_append(p: &Path) -> std::io::Result<(tokio::fs::File, u64)> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot open audit log {}: {e}", p.display()),
            )
        })?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((tokio::fs::File::from_std(f), size))
}

/// `audit.jsonl` + `.n`.
fn rotated(p: &Path, n: usize) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

enum Output {
    Stdout(tokio::io::BufWriter<tokio::io::Stdout>),
    File {
        file: tokio::io::BufWriter<tokio::fs::File>,
        path: PathBuf,
        size: u64,
        max_size: u64,
        keep: usize,
    },
}

impl Output {
    async fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Stdout(w) => w.write_all(buf).await,
            Self::File {
                file,
                path,
                size,
                max_size,
                keep,
            } => {
                // Whole lines only: each file stays within `max_size` (unless one line alone
                // is larger).
                let mut rest = buf;
                while !rest.is_empty() {
                    let room = if *max_size == 0 {
                        u64::MAX
                    } else {
                        max_size.saturating_sub(*size)
                    };
                    let take = if rest.len() as u64 <= room {
                        rest.len()
                    } else {
                        let room = usize::try_from(room).unwrap_or(usize::MAX);
                        rest[..room]
                            .iter()
                            .rposition(|&b| b == b'\n')
                            .map_or(0, |i| i + 1)
                    };
                    let take = match take {
                        0 if *size > 0 => {
                            file.flush().await?;
                            rotate(path, *keep).await?;
                            let (f, s) = open_append(path)?;
                            *file = tokio::io::BufWriter::new(f);
                            *size = s;
                            continue;
                        }
                        0 => rest
                            .iter()
                            .position(|&b| b == b'\n')
                            .map_or(rest.len(), |i| i + 1),
                        n => n,
                    };
                    file.write_all(&rest[..take]).await?;
                    *size += take as u64;
                    rest = &rest[take..];
                }
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Stdout(w) => w.flush().await,
            Self::File { file, .. } => file.flush().await,
        }
    }
}

/// Shift `p.1..p.keep-1` up by one (dropping `p.keep`), move `p` to `p.1`.
async fn rotate(p: &Path, keep: usize) -> std::io::Result<()> {
    if keep == 0 {
        return tokio::fs::remove_file(p).await;
    }
    let _ = tokio::fs::remove_file(rotated(p, keep)).await;
    for n in (1..keep).rev() {
        let from = rotated(p, n);
        if tokio::fs::try_exists(&from).await.unwrap_or(false) {
            tokio::fs::rename(&from, rotated(p, n + 1)).await?;
        }
    }
    tokio::fs::rename(p, rotated(p, 1)).await
}

struct Writer {
    out: Output,
    ctx: AuditContext,
    recent: AuditRecent,
    reported_dropped: u64,
    buf: Vec<u8>,
}

/// Largest batch written at once (also the rotation granularity).
const BATCH: usize = 64 * 1024;

impl Writer {
    fn new(out: Output, ctx: AuditContext, recent: AuditRecent) -> Self {
        Self {
            out,
            ctx,
            recent,
            reported_dropped: 0,
            buf: Vec::with_capacity(BATCH),
        }
    }

    fn encode(&mut self, ev: &SecurityEvent) {
        if serde_json::to_writer(&mut self.buf, ev).is_ok() {
            self.buf.push(b'\n');
        }
        if let Some(m) = &self.ctx.metrics {
            m.audit_event(ev.kind.as_str());
        }
        self.recent.push(ev);
    }

    async fn write_buf(&mut self) {
        if !self.buf.is_empty() {
            if let Err(e) = self.out.write(&self.buf).await {
                tracing::warn!(error = %e, "audit log write failed");
            }
            self.buf.clear();
        }
    }

    fn report_dropped(&mut self) {
        let dropped = self.ctx.sink.dropped();
        if dropped > self.reported_dropped {
            tracing::warn!(
                dropped = dropped - self.reported_dropped,
                total = dropped,
                "audit queue full: security events dropped"
            );
            self.reported_dropped = dropped;
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<SecurityEvent>, stop: Arc<Notify>) {
        loop {
            let first = tokio::select! {
                ev = rx.recv() => ev,
                _ = stop.notified() => None,
            };
            let stopping = first.is_none();
            if let Some(ev) = first {
                self.encode(&ev);
            }
            while let Ok(ev) = rx.try_recv() {
                self.encode(&ev);
                if self.buf.len() >= BATCH {
                    self.write_buf().await;
                }
            }
            self.write_buf().await;
            let _ = self.out.flush().await;
            self.report_dropped();
            if stopping {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rampart_guard::SecurityEventKind;

    #[tokio::test]
    async fn rotates_by_size_keeps_n_files_and_loses_nothing_recent() {
        let dir = std::env::temp_dir().join(format!("rampart-audit-rot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let (sink, rx) = EventSink::channel(1000);
        let task = start(
            &AuditSettings {
                path: path.display().to_string(),
                max_size: 1024,
                keep: 2,
            },
            rx,
            AuditContext {
                sink: sink.clone(),
                metrics: None,
            },
        )
        .unwrap();
        for i in 0..200 {
            sink.emit(SecurityEvent::new(SecurityEventKind::RateLimited).details(format!("n{i}")));
        }
        let recent = task.recent();
        task.finish().await;
        assert!(path.exists());
        assert!(rotated(&path, 1).exists());
        assert!(rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists(), "only `keep` rotated files");
        let mut lines = Vec::new();
        for p in [rotated(&path, 2), rotated(&path, 1), path.clone()] {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.len() <= 1024,
                "{} is {} bytes",
                p.display(),
                text.len()
            );
            lines.extend(text.lines().map(str::to_owned));
        }
        // The kept files hold the newest events, in order, without a gap.
        let n: Vec<u32> = lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["details"].as_str().unwrap()[1..].parse().unwrap()
            })
            .collect();
        assert_eq!(*n.last().unwrap(), 199);
        assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "{n:?}");
        // The in-memory tail has everything (200 < RECENT), and filters work.
        assert_eq!(
            recent
                .query(&AuditQuery {
                    limit: Some(1000),
                    ..Default::default()
                })
                .len(),
            200
        );
        let last = recent.query(&AuditQuery {
            limit: Some(1),
            ..Default::default()
        });
        assert_eq!(last[0].details, "n199");
        let none = recent.query(&AuditQuery {
            kind: Some("auth_failed".into()),
            ..Default::default()
        });
        assert!(none.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
