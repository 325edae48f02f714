//! The audit log: security events as JSON lines, written by a background task.
//!
//! Events arrive through rampart-guard's bounded `EventSink` (a full queue drops and counts;
//! the request path never waits). On shutdown the writer drains everything still queued and
//! flushes before the process exits, so no accepted event is lost on SIGTERM.

use std::{path::PathBuf, sync::Arc};

use rampart_guard::SecurityEvent;
use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    sync::{Notify, mpsc},
};

/// The running writer.
pub struct AuditTask {
    handle: Option<tokio::task::JoinHandle<()>>,
    stop: Arc<Notify>,
}

impl AuditTask {
    /// Write every queued event, flush, and stop.
    pub async fn finish(self) {
        self.stop.notify_one();
        if let Some(h) = self.handle {
            let _ = h.await;
        }
    }
}

/// Start writing `rx` to `path` (`stdout`, `off`, or a file appended to).
pub fn start(path: &str, mut rx: mpsc::Receiver<SecurityEvent>) -> std::io::Result<AuditTask> {
    let stop = Arc::new(Notify::new());
    let handle = match path {
        "off" | "" => {
            // Keep draining so senders never see a full queue.
            let s = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        ev = rx.recv() => if ev.is_none() { return },
                        _ = s.notified() => return,
                    }
                }
            })
        }
        "stdout" | "-" => {
            let s = stop.clone();
            tokio::spawn(async move { write_loop(rx, tokio::io::stdout(), s).await })
        }
        file => {
            let p = PathBuf::from(file);
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot open audit log {}: {e}", p.display()),
                    )
                })?;
            let s = stop.clone();
            tokio::spawn(async move { write_loop(rx, tokio::fs::File::from_std(f), s).await })
        }
    };
    Ok(AuditTask {
        handle: Some(handle),
        stop,
    })
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut rx: mpsc::Receiver<SecurityEvent>,
    out: W,
    stop: Arc<Notify>,
) {
    let mut out = tokio::io::BufWriter::new(out);
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let first = tokio::select! {
            ev = rx.recv() => ev,
            _ = stop.notified() => None,
        };
        let stopping = first.is_none();
        if let Some(ev) = first {
            encode(&ev, &mut buf);
        }
        while let Ok(ev) = rx.try_recv() {
            encode(&ev, &mut buf);
        }
        if !buf.is_empty() {
            if out.write_all(&buf).await.is_err() {
                tracing::warn!("audit log write failed");
            }
            buf.clear();
        }
        let _ = out.flush().await;
        if stopping {
            return;
        }
    }
}

fn encode(ev: &SecurityEvent, buf: &mut Vec<u8>) {
    if serde_json::to_writer(&mut *buf, ev).is_ok() {
        buf.push(b'\n');
    }
}
