//! The access log: one JSON object per line, written off the request path.

use std::{
    io::Write as _,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use serde::Serialize;
use tokio::{io::AsyncWriteExt, sync::mpsc};

/// What the cache did for a request (filled by the cache layer through response extensions;
/// `None` when the cache did not look at it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheField(pub &'static str);

/// One access-log line.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRecord {
    /// RFC 3339 time the request arrived.
    pub time: String,
    /// Request id.
    pub request_id: String,
    /// Resolved client IP.
    pub client_ip: String,
    /// Method.
    pub method: String,
    /// Host (from `Host` or the URI authority).
    pub host: String,
    /// Path (without the query string, which may hold secrets).
    pub path: String,
    /// Matched route name (`unmatched` when none).
    pub route: String,
    /// Final status.
    pub status: u16,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Milliseconds from request head to the end of the response.
    pub duration_ms: f64,
    /// Upstream endpoint that answered, if any.
    pub upstream: Option<String>,
    /// Cache outcome (`hit`, `miss`, ...), if the cache saw the request.
    pub cache: Option<&'static str>,
}

/// The access-log writer handle. Cheap to clone; `None` sink = off.
#[derive(Clone, Debug)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<AccessRecord>>,
    dropped: Arc<AtomicU64>,
}

/// Finishes the writer: closes the queue and waits for every queued line to be written.
pub struct AccessLogTask(Option<tokio::task::JoinHandle<()>>);

impl AccessLogTask {
    /// Wait for the writer to flush everything queued (call after the server drained and the
    /// last [`AccessLog`] handle is dropped).
    pub async fn finish(self) {
        if let Some(h) = self.0 {
            let _ = h.await;
        }
    }
}

/// Where lines go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Process stdout.
    Stdout,
    /// Append to a file.
    File(PathBuf),
    /// Nowhere.
    Off,
}

impl Destination {
    /// From the config string (`stdout`, `off`, or a path).
    pub fn parse(s: &str) -> Self {
        match s {
            "stdout" | "-" => Self::Stdout,
            "off" | "" => Self::Off,
            p => Self::File(PathBuf::from(p)),
        }
    }
}

const QUEUE: usize = 65_536;

impl AccessLog {
    /// A disabled access log.
    pub fn off() -> Self {
        Self {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Start the writer task.
    pub fn start(dest: Destination) -> std::io::Result<(Self, AccessLogTask)> {
        let (tx, mut rx) = mpsc::channel::<AccessRecord>(QUEUE);
        let task = match dest {
            Destination::Off => return Ok((Self::off(), AccessLogTask(None))),
            Destination::Stdout => tokio::spawn(async move {
                let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
                write_all(&mut rx, &mut out).await;
            }),
            Destination::File(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot open access log {}: {e}", path.display()),
                        )
                    })?;
                tokio::spawn(async move {
                    let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
                    write_all(&mut rx, &mut out).await;
                })
            }
        };
        Ok((
            Self {
                tx: Some(tx),
                dropped: Arc::new(AtomicU64::new(0)),
            },
            AccessLogTask(Some(task)),
        ))
    }

    /// Whether lines are written at all (lets callers skip building records).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queue a line; never blocks. A full queue drops the line and counts it.
    pub fn log(&self, rec: AccessRecord) {
        if let Some(tx) = &self.tx
            && tx.try_send(rec).is_err()
        {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "access log queue full; lines dropped");
            }
        }
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_all<W: tokio::io::AsyncWrite + Unpin>(
    rx: &mut mpsc::Receiver<AccessRecord>,
    out: &mut W,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(rec) = rx.recv().await {
        encode(&rec, &mut buf);
        // Batch whatever else is already queued, then write once.
        while buf.len() < 60 * 1024 {
            match rx.try_recv() {
                Ok(rec) => encode(&rec, &mut buf),
                Err(_) => break,
            }
        }
        if out.write_all(&buf).await.is_err() || out.flush().await.is_err() {
            tracing::warn!("access log write failed");
        }
        buf.clear();
    }
    let _ = out.flush().await;
}

fn encode(rec: &AccessRecord, buf: &mut Vec<u8>) {
    if serde_json::to_writer(&mut *buf, rec).is_ok() {
        buf.push(b'\n');
    } else {
        let _ = writeln!(buf, "{{\"error\":\"unencodable access record\"}}");
    }
}

/// The current time as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u16) -> AccessRecord {
        AccessRecord {
            time: now_rfc3339(),
            request_id: format!("id{i}"),
            client_ip: "127.0.0.1".into(),
            method: "GET".into(),
            host: "h".into(),
            path: "/p".into(),
            route: "r".into(),
            status: 200 + i,
            bytes_in: 0,
            bytes_out: 5,
            duration_ms: 1.5,
            upstream: None,
            cache: Some("miss"),
        }
    }

    #[tokio::test]
    async fn writes_every_queued_line_before_finishing() {
        let path = std::env::temp_dir().join(format!("rampart-access-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (log, task) = AccessLog::start(Destination::File(path.clone())).unwrap();
        for i in 0..50 {
            log.log(rec(i));
        }
        drop(log);
        task.finish().await;
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 50);
        assert_eq!(lines[49]["status"], 249);
        assert_eq!(lines[0]["cache"], "miss");
        let _ = std::fs::remove_file(&path);
    }
}
