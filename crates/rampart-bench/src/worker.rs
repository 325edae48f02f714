//! The load engine: one OS thread per `-t`, each with a current-thread tokio runtime and a
//! `FuturesUnordered` of connection tasks; connections are split round-robin across the workers.
//!
//! A *connection task* owns one connection (a `TcpStream` with `TCP_NODELAY`, optionally TLS,
//! spoken to by the built-in HTTP/1.1 client of [`crate::h1`] or by hyper's low-level
//! `client::conn`, see [`Client`]) and runs one *slot* (HTTP/1.1) or `--streams` slots
//! (HTTP/2) on it. A slot is a loop of request/response exchanges:
//!
//! * closed model: the next request leaves as soon as the previous response body is read;
//! * open model: slot `k` of `S` sends its `i`-th request at the intended time
//!   `start + (k + i*S) / rate`, so the union of all slots is a constant arrival rate. A
//!   request that leaves late (its slot was still busy) is timed from its *intended* start:
//!   the coordinated-omission correction of wrk2. One that leaves on time is timed from the
//!   moment it is actually sent, so timer granularity does not inflate latencies.
//!
//! Workers start together: every connection is opened first, then a barrier fixes the common
//! start instant. Requests whose start falls in the warm-up are sent but not recorded. A `-d`
//! run stops on time (in-flight requests are abandoned, as in wrk); a `-n` run waits for its
//! last response.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::error::BenchError;
use crate::h1::{H1Conn, Stream};
use crate::plan::{Client as ClientKind, Load, Origin, Plan, Stop, Template};
use crate::report::ErrorKind;
use crate::stats::WorkerStats;

/// Pause after a failed connect before the next attempt, so a dead target is not hammered.
const CONNECT_BACKOFF: Duration = Duration::from_millis(20);

/// Live counters of one worker, read by the progress line. Cache-line aligned so two workers
/// never write the same line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Progress {
    pub responses: AtomicU64,
    pub errors: AtomicU64,
}

/// State shared by all workers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub plan: Arc<Plan>,
    pub start: OnceLock<Instant>,
    pub progress: Vec<Progress>,
    gate: Gate,
    /// Closed model with `-n`: measured requests claimed so far.
    claimed: AtomicU64,
    abort: AtomicBool,
    /// Set by [`Shared::interrupt`] (Ctrl-C): workers stop at once and report what they have.
    stop: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub fn new(plan: Arc<Plan>) -> Self {
        let threads = plan.threads as usize;
        Self {
            plan,
            start: OnceLock::new(),
            progress: (0..threads).map(|_| Progress::default()).collect(),
            gate: Gate::new(threads),
            claimed: AtomicU64::new(0),
            abort: AtomicBool::new(false),
            stop: tokio::sync::watch::Sender::new(false),
        }
    }
}

/// A one-shot start barrier that can be cancelled (a worker that fails to start must not
/// leave the others waiting forever). The last thread to arrive runs `on_open` before anyone
/// is released.
#[derive(Debug)]
struct Gate {
    state: Mutex<(usize, bool)>,
    cv: Condvar,
    n: usize,
}

impl Gate {
    fn new(n: usize) -> Self {
        Self {
            state: Mutex::new((0, false)),
            cv: Condvar::new(),
            n,
        }
    }

    fn wait(&self, on_open: impl FnOnce()) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        st.0 += 1;
        if st.0 >= self.n {
            on_open();
            st.1 = true;
            self.cv.notify_all();
            return;
        }
        while !st.1 {
            st = match self.cv.wait(st) {
                Ok(s) => s,
                Err(_) => return,
            };
        }
    }

    fn cancel(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.1 = true;
            self.cv.notify_all();
        }
    }
}

impl Shared {
    /// Stops the run early (Ctrl-C): no new requests, in-flight ones abandoned; the numbers
    /// gathered so far are reported.
    pub fn interrupt(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.stop.send_replace(true);
    }

    /// Whether [`Shared::interrupt`] was called.
    pub fn interrupted(&self) -> bool {
        *self.stop.borrow()
    }
}

/// What the engine hands back.
#[derive(Debug)]
pub(crate) struct EngineOutput {
    pub stats: WorkerStats,
    /// End of the warm-up: the start of the measurement.
    pub measure_start: Instant,
    /// When the last worker finished.
    pub finished: Instant,
}

/// Runs the plan to completion on `plan.threads` threads.
pub(crate) fn run(shared: Arc<Shared>) -> Result<EngineOutput, BenchError> {
    let plan = shared.plan.clone();
    let threads = plan.threads as usize;
    let mut assignments: Vec<Vec<(usize, u64)>> = vec![Vec::new(); threads];
    let mut global = 0u64;
    for (oi, o) in plan.origins.iter().enumerate() {
        for _ in 0..o.connections {
            assignments[(global % threads as u64) as usize].push((oi, global));
            global += 1;
        }
    }
    let mut handles = Vec::with_capacity(threads);
    for (idx, conns) in assignments.into_iter().enumerate() {
        let worker_shared = shared.clone();
        let h = std::thread::Builder::new()
            .name(format!("bench-worker-{idx}"))
            .spawn(move || worker_thread(idx, worker_shared, conns));
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                // Release the threads already waiting at the start gate, then report.
                shared.abort.store(true, Ordering::SeqCst);
                shared.gate.cancel();
                for h in handles {
                    let _ = h.join();
                }
                return Err(BenchError::Runtime(format!("spawning worker thread: {e}")));
            }
        }
    }
    let mut merged: Option<WorkerStats> = None;
    let mut finished: Option<Instant> = None;
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok((stats, done))) => {
                finished = Some(finished.map_or(done, |f| f.max(done)));
                match &mut merged {
                    Some(m) => m.merge(&stats),
                    None => merged = Some(stats),
                }
            }
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => {
                first_err =
                    first_err.or(Some(BenchError::Runtime("a worker thread panicked".into())))
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let stats = merged.ok_or_else(|| BenchError::Runtime("no worker finished".into()))?;
    let start = shared.start.get().copied().unwrap_or_else(Instant::now);
    let measure_start = start + plan.warmup;
    Ok(EngineOutput {
        stats,
        measure_start,
        finished: finished.unwrap_or(measure_start).max(measure_start),
    })
}

fn worker_thread(
    idx: usize,
    shared: Arc<Shared>,
    conns: Vec<(usize, u64)>,
) -> Result<(WorkerStats, Instant), BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Runtime(format!("tokio runtime: {e}")));
    let stats = WorkerStats::new();
    let (rt, stats) = match (rt, stats) {
        (Ok(rt), Ok(stats)) => (rt, stats),
        (Err(e), _) | (_, Err(e)) => {
            shared.abort.store(true, Ordering::SeqCst);
            shared.gate.cancel();
            return Err(e);
        }
    };
    rt.block_on(async move {
        // Open every connection first, so the start is common and connect time is not latency.
        let mut stats = stats;
        let plan = shared.plan.clone();
        let firsts = join_all(
            conns
                .iter()
                .enumerate()
                .map(|(i, &(oi, _))| connect(&plan, &plan.origins[oi], i)),
        )
        .await;
        let firsts: Vec<Option<Conn>> = firsts
            .into_iter()
            .map(|r| {
                r.map_err(|msg| stats.record_error(ErrorKind::Connect, None, || msg))
                    .ok()
            })
            .collect();
        // Blocking here is fine: this thread has nothing else to run until the start.
        shared.gate.wait(|| {
            let _ = shared.start.set(Instant::now());
        });
        let start = shared.start.get().copied().unwrap_or_else(Instant::now);
        let warm_end = start + plan.warmup;
        let end = match plan.stop {
            Stop::Duration(d) => Some(warm_end + d),
            Stop::Count(_) => None,
        };
        let ctx = Rc::new(Ctx {
            shared: shared.clone(),
            worker: idx,
            stats: RefCell::new(stats),
            start,
            warm_end,
            end,
        });
        if !shared.abort.load(Ordering::SeqCst) {
            // All connection tasks of this worker are polled by one `FuturesUnordered` inside
            // `block_on`: no task spawning, no scheduler hop, only woken connections polled.
            let mut tasks: FuturesUnordered<_> = conns
                .iter()
                .zip(firsts)
                .map(|(&(oi, global), first)| connection_task(ctx.clone(), oi, global, first))
                .collect();
            // Unconstrained: this runtime runs nothing but the benchmark, and tokio's co-op budget
            // would otherwise turn `drive`'s local re-polls into forced yields.
            let all = tokio::task::unconstrained(async { while tasks.next().await.is_some() {} });
            let mut stop = shared.stop.subscribe();
            let all = async {
                tokio::select! {
                    () = all => {}
                    _ = stop.wait_for(|stopped| *stopped) => {}
                }
            };
            match end {
                // A `-d` run ends on time, as wrk's does: requests still in flight then are
                // abandoned, neither counted nor waited for.
                Some(end) => {
                    let _ = tokio::time::timeout_at(end.into(), all).await;
                }
                None => all.await,
            }
        }
        let done = end.map_or_else(Instant::now, |end| Instant::now().min(end));
        let stats = ctx.stats.replace(WorkerStats::new()?);
        Ok((stats, done))
    })
}

/// Per-worker context shared by its connection tasks (single thread: `Rc` + `RefCell`,
/// never borrowed across an await).
struct Ctx {
    shared: Arc<Shared>,
    worker: usize,
    stats: RefCell<WorkerStats>,
    start: Instant,
    warm_end: Instant,
    end: Option<Instant>,
}

impl Ctx {
    fn progress(&self) -> &Progress {
        &self.shared.progress[self.worker]
    }

    fn record_error(
        &self,
        kind: ErrorKind,
        measured: bool,
        now: Instant,
        msg: impl FnOnce() -> String,
    ) {
        if measured {
            self.stats.borrow_mut().record_error(
                kind,
                Some(now.saturating_duration_since(self.warm_end)),
                msg,
            );
            self.progress().errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The next request a slot should send.
#[derive(Debug, Clone, Copy)]
struct Planned {
    /// Open model: when it should leave.
    intended: Option<Instant>,
    /// Whether it counts (started after the warm-up).
    measured: bool,
}

struct Slot {
    /// Global slot number (connection * streams + stream).
    index: u64,
    /// Open model: requests scheduled so far.
    seq: u64,
    /// Open model with `-n`: measured requests left.
    quota: Option<u64>,
    rng: u64,
    /// A planned request that could not be sent (connection closed first): sent next.
    pending: Option<Planned>,
    done: bool,
}

impl Slot {
    fn new(plan: &Plan, index: u64) -> Self {
        let quota = match (plan.load, plan.stop) {
            (Load::Open { .. }, Stop::Count(n)) => {
                let slots = plan.slots();
                Some(n / slots + u64::from(index < n % slots))
            }
            _ => None,
        };
        // SplitMix-style seed so slots pick different request sequences.
        let rng = (index + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Self {
            index,
            seq: 0,
            quota,
            rng,
            pending: None,
            done: false,
        }
    }

    /// xorshift64*: a few cycles per pick, good enough to spread weighted requests.
    #[inline]
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11
    }

    /// Decides the next request, or `None` when this slot has finished.
    fn next(&mut self, ctx: &Ctx) -> Option<Planned> {
        if let Some(p) = self.pending.take() {
            return Some(p);
        }
        if self.done || ctx.shared.abort.load(Ordering::Relaxed) {
            self.done = true;
            return None;
        }
        let plan = &ctx.shared.plan;
        match plan.load {
            Load::Closed => {
                let now = Instant::now();
                if ctx.end.is_some_and(|end| now >= end) {
                    self.done = true;
                    return None;
                }
                let measured = now >= ctx.warm_end;
                if measured
                    && let Stop::Count(n) = plan.stop
                    && ctx.shared.claimed.fetch_add(1, Ordering::Relaxed) >= n
                {
                    self.done = true;
                    return None;
                }
                Some(Planned {
                    intended: None,
                    measured,
                })
            }
            Load::Open { rate } => {
                let slots = plan.slots() as f64;
                let offset = (self.index as f64 + self.seq as f64 * slots) / rate;
                let intended = ctx.start + Duration::from_secs_f64(offset);
                if ctx.end.is_some_and(|end| intended >= end) {
                    self.done = true;
                    return None;
                }
                let measured = intended >= ctx.warm_end;
                if measured && let Some(q) = &mut self.quota {
                    if *q == 0 {
                        self.done = true;
                        return None;
                    }
                    *q -= 1;
                }
                self.seq += 1;
                Some(Planned {
                    intended: Some(intended),
                    measured,
                })
            }
        }
    }
}

/// A connection's driver (hyper's `Connection` future), polled by [`drive`].
type Driver = Pin<Box<dyn Future<Output = ()>>>;

/// An open connection.
enum Conn {
    /// The built-in HTTP/1.1 client.
    BuiltIn(H1Conn),
    /// hyper: the request handle and its driver.
    Hyper { sender: Sender, driver: Driver },
}

/// One finished exchange.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub status: u16,
    /// Body bytes received.
    pub body_bytes: u64,
    /// A failed scenario assertion.
    pub assertion: Option<String>,
    /// The connection cannot carry another request (`Connection: close` and the like).
    pub close: bool,
}

/// Why an exchange produced no response.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection was closed before the request got any answer: on a connection that
    /// already served requests, a keep-alive close, and the request is resent on a new one.
    Closed(String),
    /// The request failed.
    Failed(ErrorKind, String),
}

/// A connection a slot sends its requests on: the built-in HTTP/1.1 client or hyper.
trait Client {
    /// Sends one request and reads its whole response.
    async fn exchange(&mut self, tpl: &Template) -> Result<Exchange, Failure>;

    /// Whether the connection must be replaced after a failed or timed-out exchange.
    fn broken_after_error(&self) -> bool;
}

impl Client for H1Conn {
    #[inline]
    async fn exchange(&mut self, tpl: &Template) -> Result<Exchange, Failure> {
        H1Conn::exchange(self, tpl).await
    }

    fn broken_after_error(&self) -> bool {
        // The byte stream is out of step after any failure.
        true
    }
}

impl Client for Sender {
    async fn exchange(&mut self, tpl: &Template) -> Result<Exchange, Failure> {
        self.ready()
            .await
            .map_err(|e| Failure::Closed(describe(&e)))?;
        exchange(self, tpl.request.clone(), tpl)
            .await
            .map_err(|e| Failure::Failed(classify(&e), describe(&e)))
    }

    fn broken_after_error(&self) -> bool {
        match self {
            Sender::H1(_) => true,
            Sender::H2(s) => s.is_closed(),
        }
    }
}

/// A client connection handle.
enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn ready(&mut self) -> Result<(), hyper::Error> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }

    async fn send(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, hyper::Error> {
        match self {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
    }

    fn share(&self) -> Option<Sender> {
        match self {
            Sender::H1(_) => None,
            Sender::H2(s) => Some(Sender::H2(s.clone())),
        }
    }
}

enum Outcome {
    /// The slot finished its work.
    Done,
    /// The connection is gone; reconnect and go on.
    Broken,
}

async fn connection_task(ctx: Rc<Ctx>, oi: usize, global: u64, mut conn: Option<Conn>) {
    let plan = ctx.shared.plan.clone();
    let origin = &plan.origins[oi];
    let streams = u64::from(plan.streams);
    let mut slots: Vec<Slot> = (0..streams)
        .map(|s| Slot::new(&plan, global * streams + s))
        .collect();
    let mut attempt = global as usize;
    loop {
        let next = match conn.take() {
            Some(c) => c,
            None => {
                attempt += 1;
                match connect(&plan, origin, attempt).await {
                    Ok(c) => c,
                    Err(msg) => {
                        // A failed connect stands for one planned request, so `-n` stays bounded
                        // and the open schedule moves on.
                        let Some(p) = slots.iter_mut().find_map(|s| s.next(&ctx)) else {
                            break;
                        };
                        ctx.record_error(ErrorKind::Connect, p.measured, Instant::now(), || msg);
                        tokio::time::sleep(CONNECT_BACKOFF).await;
                        continue;
                    }
                }
            }
        };
        let outcome = match next {
            // One slot per connection for HTTP/1.1.
            Conn::BuiltIn(mut c) => run_slot(&ctx, origin, &mut c, &mut slots[0]).await,
            Conn::Hyper { sender, driver } if slots.len() == 1 => {
                let mut sender = sender;
                drive(driver, run_slot(&ctx, origin, &mut sender, &mut slots[0])).await
            }
            Conn::Hyper { sender, driver } => {
                let all = join_all(slots.iter_mut().map(|slot| {
                    let ctx = &ctx;
                    let s = sender.share();
                    async move {
                        match s {
                            Some(mut s) => run_slot(ctx, origin, &mut s, slot).await,
                            None => Outcome::Broken,
                        }
                    }
                }));
                let outcomes = drive(driver, all).await;
                if outcomes.iter().any(|o| matches!(o, Outcome::Broken)) {
                    Outcome::Broken
                } else {
                    Outcome::Done
                }
            }
        };
        match outcome {
            Outcome::Done => break,
            Outcome::Broken => {
                if slots.iter().all(|s| s.done && s.pending.is_none()) {
                    break;
                }
            }
        }
    }
}

/// Polls a connection's driver future inside the task that uses the connection, instead of
/// spawning it: a request and its response then cost no cross-task wake-up. Once the driver
/// finishes (connection closed), the work goes on alone and sees the error on its next request.
///
/// Both are polled with a [`LocalWake`] waker: a wake-up raised *during* this poll (hyper's
/// dispatcher handing a response to the work, the work queueing the next request for the
/// driver) just marks the pair dirty and they are polled again right here, instead of
/// re-queueing the task through the runtime. Only wake-ups from outside (socket readiness,
/// timers) reach the runtime.
async fn drive<F: Future>(driver: Driver, work: F) -> F::Output {
    let mut driver = Some(driver);
    let mut work = std::pin::pin!(work);
    let local = Arc::new(LocalWake::default());
    let waker = Waker::from(local.clone());
    std::future::poll_fn(move |cx| {
        local.parent.register(cx.waker());
        local.in_poll.store(true, Ordering::SeqCst);
        let mut lcx = Context::from_waker(&waker);
        let mut out = Poll::Pending;
        // Bounded, so one connection cannot monopolise its worker.
        for _ in 0..16 {
            local.dirty.store(false, Ordering::SeqCst);
            if let Poll::Ready(o) = work.as_mut().poll(&mut lcx) {
                out = Poll::Ready(o);
                break;
            }
            if let Some(d) = driver.as_mut()
                && d.as_mut().poll(&mut lcx).is_ready()
            {
                driver = None;
            }
            if !local.dirty.load(Ordering::SeqCst) {
                break;
            }
        }
        local.in_poll.store(false, Ordering::SeqCst);
        if out.is_pending() && local.dirty.swap(false, Ordering::SeqCst) {
            cx.waker().wake_by_ref();
        }
        out
    })
    .await
}

/// The waker of a [`drive`] pair: remembers wake-ups raised while the pair is being polled,
/// forwards the others to the task's waker.
#[derive(Debug, Default)]
struct LocalWake {
    dirty: AtomicBool,
    in_poll: AtomicBool,
    parent: AtomicWaker,
}

impl Wake for LocalWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.dirty.store(true, Ordering::SeqCst);
        if !self.in_poll.load(Ordering::SeqCst) {
            self.parent.wake();
        }
    }
}

/// Runs `work` until `deadline`; `Err(())` when the deadline passed first.
///
/// A lazy timer instead of `tokio::time::timeout` per request: the slot's one `watchdog`
/// sleep is left armed at an older (earlier) deadline, and only when it fires is it checked
/// against the current request's deadline and pushed forward. So a request costs no timer
/// registration; the watchdog fires about once per `--timeout` per slot.
async fn with_deadline<F: Future>(
    mut watchdog: Pin<&mut tokio::time::Sleep>,
    deadline: Instant,
    work: F,
) -> Result<F::Output, ()> {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        while watchdog.as_mut().poll(cx).is_ready() {
            if Instant::now() >= deadline {
                return Poll::Ready(Err(()));
            }
            watchdog.as_mut().reset(deadline.into());
        }
        Poll::Pending
    })
    .await
}

async fn run_slot<C: Client>(
    ctx: &Ctx,
    origin: &Origin,
    client: &mut C,
    slot: &mut Slot,
) -> Outcome {
    let timeout = ctx.shared.plan.timeout;
    // Exchanges completed on this connection by this slot.
    let mut served = 0u64;
    // Timers reused across requests (see `with_deadline`).
    let mut watchdog = std::pin::pin!(tokio::time::sleep(timeout));
    let mut pace = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    loop {
        let Some(p) = slot.next(ctx) else {
            return Outcome::Done;
        };
        let mut late = false;
        if let Some(t) = p.intended {
            if Instant::now() < t {
                pace.as_mut().reset(t.into());
                pace.as_mut().await;
            } else {
                late = true;
            }
        }
        let tpl = if origin.templates.len() == 1 {
            &origin.templates[0]
        } else {
            origin.pick(slot.random())
        };
        let sent = Instant::now();
        let result = with_deadline(watchdog.as_mut(), sent + timeout, client.exchange(tpl)).await;
        let now = Instant::now();
        let from = match p.intended {
            Some(t) if late => t,
            _ => sent,
        };
        match result {
            Ok(Ok(x)) => {
                served += 1;
                if p.measured {
                    let mut st = ctx.stats.borrow_mut();
                    st.record_response(
                        now.saturating_duration_since(ctx.warm_end),
                        now - from,
                        x.status,
                        x.body_bytes,
                    );
                    if let Some(msg) = x.assertion {
                        st.record_error(
                            ErrorKind::Assertion,
                            Some(now.saturating_duration_since(ctx.warm_end)),
                            || format!("{}: {msg}", tpl.label),
                        );
                        ctx.progress().errors.fetch_add(1, Ordering::Relaxed);
                    }
                    ctx.progress().responses.fetch_add(1, Ordering::Relaxed);
                } else {
                    ctx.stats.borrow_mut().warmup_requests += 1;
                }
                if x.close {
                    // The server (or the request) ends the connection: open a new one.
                    return Outcome::Broken;
                }
            }
            Ok(Err(Failure::Closed(msg))) => {
                if served > 0 {
                    // The server ended a used keep-alive connection (`Connection: close`, a
                    // keep-alive request limit or idle timeout): not a failed request. Send it
                    // on a new one.
                    slot.pending = Some(p);
                } else {
                    // A fresh connection closed before its first response: the server refuses us.
                    ctx.record_error(ErrorKind::Reset, p.measured, now, || {
                        format!("connection closed before the first response: {msg}")
                    });
                }
                return Outcome::Broken;
            }
            Ok(Err(Failure::Failed(kind, msg))) => {
                ctx.record_error(kind, p.measured, now, || msg);
                if client.broken_after_error() {
                    return Outcome::Broken;
                }
            }
            Err(_) => {
                ctx.record_error(ErrorKind::Timeout, p.measured, now, || {
                    format!(
                        "no complete response within {}",
                        humantime::format_duration(timeout)
                    )
                });
                if client.broken_after_error() {
                    return Outcome::Broken;
                }
            }
        }
    }
}

/// One exchange on hyper: send, check the head, read the body (counting its bytes).
async fn exchange(
    sender: &mut Sender,
    req: http::Request<Full<Bytes>>,
    tpl: &Template,
) -> Result<Exchange, hyper::Error> {
    let resp = sender.send(req).await?;
    let status = resp.status().as_u16();
    let assertion = if tpl.expect.is_empty() {
        None
    } else {
        tpl.expect.check(status, resp.headers()).err()
    };
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame?.data_ref() {
            bytes += d.len() as u64;
        }
    }
    Ok(Exchange {
        status,
        body_bytes: bytes,
        assertion,
        // hyper keeps track of keep-alive itself: a closed connection fails `ready()`.
        close: false,
    })
}

/// Maps a hyper error to a kind.
fn classify(e: &hyper::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
        return ErrorKind::Reset;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
            ) {
                return ErrorKind::Reset;
            }
        }
        src = s.source();
    }
    ErrorKind::Other
}

/// An error and its causes on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// Opens a connection: TCP (`TCP_NODELAY`), TLS if https, then the HTTP handshake. The
/// connection driver runs as a local task.
async fn connect(plan: &Plan, origin: &Origin, attempt: usize) -> Result<Conn, String> {
    // Every resolved address in turn (starting at a different one per attempt), so a name
    // like `localhost` works whether the server listens on ::1 or 127.0.0.1.
    let n = origin.addrs.len();
    let mut last = String::new();
    let mut found = None;
    for i in 0..n {
        let addr = origin.addrs[(attempt + i) % n];
        match tokio::time::timeout(plan.timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                found = Some((tcp, addr));
                break;
            }
            Ok(Err(e)) => last = format!("connect to {addr}: {e}"),
            Err(_) => last = format!("connect to {addr} timed out"),
        }
    }
    let Some((tcp, addr)) = found else {
        return Err(last);
    };
    tcp.set_nodelay(true)
        .map_err(|e| format!("setting TCP_NODELAY: {e}"))?;
    if !origin.url.https {
        return handshake(Stream::Tcp(tcp), plan).await;
    }
    let cfg = plan
        .tls
        .clone()
        .ok_or_else(|| "tls is not configured".to_owned())?;
    let name = crate::tls::server_name(&origin.url.host)?;
    let tls = tokio::time::timeout(
        plan.timeout,
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| format!("tls handshake with {addr} timed out"))?
    .map_err(|e| {
        let mut m = format!(
            "tls handshake with {}: {}",
            origin.url.host_port(),
            describe(&e)
        );
        if m.contains("certificate") {
            m.push_str(" (use --insecure to skip verification)");
        }
        if plan.http2 && m.contains("NoApplicationProtocol") {
            m.push_str(" (the server does not offer HTTP/2 (h2) via ALPN)");
        }
        m
    })?;
    if plan.http2 && tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(format!(
            "{}: the server does not offer HTTP/2 (h2) via ALPN",
            origin.url.host_port()
        ));
    }
    handshake(Stream::Tls(Box::new(tls)), plan).await
}

/// Starts the HTTP layer on an open stream: the built-in HTTP/1.1 client, or hyper's
/// handshake.
async fn handshake(io: Stream, plan: &Plan) -> Result<Conn, String> {
    if plan.client == ClientKind::BuiltIn {
        return Ok(Conn::BuiltIn(H1Conn::new(io)));
    }
    let io = TokioIo::new(io);
    if plan.http2 {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(|e| format!("http/2 handshake: {}", describe(&e)))?;
        let driver: Driver = Box::pin(async move {
            let _ = conn.await;
        });
        Ok(Conn::Hyper {
            sender: Sender::H2(sender),
            driver,
        })
    } else {
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| format!("http/1.1 handshake: {}", describe(&e)))?;
        let driver: Driver = Box::pin(async move {
            let _ = conn.await;
        });
        Ok(Conn::Hyper {
            sender: Sender::H1(sender),
            driver,
        })
    }
}

/// Opens (and drops) one connection per origin, so an unreachable target or a TLS problem is
/// reported clearly before any load starts.
pub(crate) fn preflight(plan: &Plan) -> Result<(), BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Runtime(format!("tokio runtime: {e}")))?;
    rt.block_on(async {
        for o in &plan.origins {
            connect(plan, o, 0)
                .await
                .map_err(|reason| BenchError::Unreachable {
                    target: o.url.origin(),
                    reason,
                })?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::BenchArgs;

    #[test]
    fn interrupt_stops_a_long_run_at_once() {
        // A server that accepts but never answers: every request hangs until the interrupt.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = std::thread::spawn(move || listener.incoming().take(2).collect::<Vec<_>>());
        let url = format!("http://{addr}/");
        let args =
            BenchArgs::try_parse_from(["bench", "-d", "60s", "-c", "2", "-t", "2", &url]).unwrap();
        let shared = Arc::new(Shared::new(Arc::new(crate::plan::build(&args).unwrap())));
        let engine = {
            let shared = shared.clone();
            std::thread::spawn(move || run(shared))
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while shared.start.get().is_none() {
            assert!(Instant::now() < deadline, "workers never started");
            std::thread::yield_now();
        }
        shared.interrupt();
        assert!(shared.interrupted());
        let out = engine.join().unwrap().unwrap();
        assert!(out.finished.duration_since(out.measure_start) < Duration::from_secs(30));
        assert_eq!(out.stats.responses, 0);
        assert_eq!(
            out.stats.errors.iter().sum::<u64>(),
            0,
            "abandoned requests are not errors"
        );
        assert_eq!(acceptor.join().unwrap().len(), 2);
    }
}
