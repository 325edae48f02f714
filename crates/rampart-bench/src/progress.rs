//! The live progress line on stderr, only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::plan::Stop;
use crate::worker::Shared;

const TICK: Duration = Duration::from_millis(500);

/// A running progress printer; [`Progress::finish`] stops it and clears the line.
pub(crate) struct Progress {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Progress {
    /// Starts the printer if stderr is a terminal.
    pub fn start(shared: Arc<Shared>) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let (stop, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bench-progress".into())
            .spawn(move || print_loop(&shared, &rx))
            .ok()?;
        Some(Self { stop, thread })
    }

    /// Stops the printer and clears its line.
    pub fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn print_loop(shared: &Shared, rx: &mpsc::Receiver<()>) {
    let mut last = (Instant::now(), 0u64);
    let mut err = std::io::stderr();
    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TICK) {
        let now = Instant::now();
        let responses: u64 = shared
            .progress
            .iter()
            .map(|p| p.responses.load(Ordering::Relaxed))
            .sum();
        let errors: u64 = shared
            .progress
            .iter()
            .map(|p| p.errors.load(Ordering::Relaxed))
            .sum();
        let dt = now.duration_since(last.0).as_secs_f64();
        let rate = if dt > 0.0 {
            responses.saturating_sub(last.1) as f64 / dt
        } else {
            0.0
        };
        last = (now, responses);
        let plan = &shared.plan;
        let line = match shared.start.get() {
            None => "connecting...".to_owned(),
            Some(&start) if now < start + plan.warmup => format!(
                "warm-up {:.1}s/{:.1}s",
                now.duration_since(start).as_secs_f64(),
                plan.warmup.as_secs_f64()
            ),
            Some(&start) => {
                let t = now.duration_since(start + plan.warmup).as_secs_f64();
                let of = match plan.stop {
                    Stop::Duration(d) => format!("{t:.1}s/{:.0}s", d.as_secs_f64()),
                    Stop::Count(n) => format!("{t:.1}s, {responses}/{n}"),
                };
                format!("{of}  {rate:.0} req/s now  {responses} responses  {errors} errors")
            }
        };
        let _ = write!(err, "\r\x1b[2K  {line}");
        let _ = err.flush();
    }
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}
