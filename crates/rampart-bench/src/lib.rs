//! `rampart-bench`: the load generator behind `rampart bench`.
//!
//! Not a layer of the request path (ARCHITECTURE.md §3): it sits *outside* the gateway and
//! measures it (or any HTTP server) from a client's point of view, as wrk, wrk2 and oha do.
//! It takes no config-file keys; its input is [`BenchArgs`] (the `rampart bench` command line)
//! and, optionally, a TOML scenario file (see [`scenario`](crate::scenario) for its format).
//!
//! * **Models.** Closed (`-c` connections, each sending its next request when the previous one
//!   completes) or open (`--rate R`: constant arrival rate with latency measured from each
//!   request's intended start, the coordinated-omission correction of wrk2).
//! * **Protocols.** HTTP/1.1 keep-alive on a built-in client (`codec`: requests encoded once,
//!   response heads parsed with `httparse`, bodies skipped and counted; `h1`: one connection's
//!   exchange loop), and HTTP/2 (`--http2`: h2c prior knowledge, or ALPN h2 over TLS,
//!   `--streams` per connection) on hyper 1's low-level `client::conn`; `--hyper-h1` runs
//!   HTTP/1.1 on hyper too. Tokio `TcpStream`s with `TCP_NODELAY`; TLS is rustls (ring).
//! * **Engine.** `-t` OS threads, each a current-thread tokio runtime; connections split
//!   round-robin; requests pre-built once and cloned (reference-counted URI, headers, `Bytes`
//!   body). Latency goes to a per-worker HDR histogram, merged at the end.
//! * **Results.** Throughput, p50/p90/p99/p99.9/max, status codes, error kinds (connect, timeout,
//!   reset, assertion, other), body bytes; `--json`, a self-contained `--html` report, and
//!   `--baseline` comparison (exit code 1 on regression).
//!
//! Entry points: [`run`] (what the binary calls: prints, writes files, returns the exit code)
//! and [`execute`] (runs the benchmark and returns the [`BenchResult`], printing nothing).

mod args;
mod codec;
pub mod compare;
mod error;
mod h1;
pub mod html;
mod plan;
mod progress;
pub mod report;
pub mod scenario;
mod stats;
mod tls;
mod worker;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub use args::{BenchArgs, parse_duration, parse_percent, parse_rate};
pub use error::BenchError;
pub use report::{BenchResult, ErrorKind};

use plan::{Load, Stop};

/// Exit code when a run regressed beyond `--max-regression` against `--baseline`.
pub const EXIT_REGRESSION: u8 = 1;
/// Exit code when not a single request got a response.
pub const EXIT_NO_RESPONSES: u8 = 2;

/// Runs `rampart bench`: the benchmark, the text summary on stdout, `--json` / `--html` files,
/// and the `--baseline` check. Synchronous: it creates its own threads and runtimes, so call
/// it before (outside) any tokio runtime.
///
/// Exit codes: 0 done; 1 ([`EXIT_REGRESSION`]) regression beyond `--max-regression`;
/// 2 ([`EXIT_NO_RESPONSES`]) no request got a response. Invalid arguments, an unreachable
/// target or unwritable output files are `Err`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    // Read the baseline first: a typo in its path should not cost a whole benchmark run.
    let baseline = args.baseline.as_deref().map(compare::load).transpose()?;
    let (result, interrupted) = execute_inner(&args, true)?;
    if interrupted {
        println!("interrupted: the numbers below cover the run up to Ctrl-C");
    }
    print!("{}", report::render_text(&result));
    if let Some(rate) = result.settings.rate
        && result.responses > 0
        && result.rps < rate * 0.99
    {
        println!(
            "  Note          achieved {:.1}% of the target rate: the target (or -c {}) could not keep up",
            100.0 * result.rps / rate,
            result.settings.connections
        );
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&result)
            .map_err(|e| anyhow::anyhow!("serializing the result: {e}"))?;
        write_file(path, json.as_bytes())?;
    }
    if let Some(path) = &args.html {
        write_file(path, html::render(&result).as_bytes())?;
    }
    if result.responses == 0 {
        eprintln!("error: no request got a response (see the errors above)");
        return Ok(ExitCode::from(EXIT_NO_RESPONSES));
    }
    if let Some(base) = baseline {
        let cmp = compare::compare(&base, &result, args.max_regression);
        print!("{}", cmp.render());
        if cmp.regressed() {
            return Ok(ExitCode::from(EXIT_REGRESSION));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), BenchError> {
    std::fs::write(path, data).map_err(|source| BenchError::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    })
}

/// Runs the benchmark described by `args` and returns its result, printing nothing (no
/// progress line either). Used by [`run`], by tests and by embedders. Synchronous.
pub fn execute(args: &BenchArgs) -> Result<BenchResult, BenchError> {
    execute_inner(args, false).map(|(r, _)| r)
}

/// `interactive`: live progress line and Ctrl-C handling (first Ctrl-C stops the run and
/// reports, a second one exits at once).
fn execute_inner(args: &BenchArgs, interactive: bool) -> Result<(BenchResult, bool), BenchError> {
    let plan = Arc::new(plan::build(args)?);
    worker::preflight(&plan)?;
    let shared = Arc::new(worker::Shared::new(plan.clone()));
    let printer = if interactive {
        progress::Progress::start(shared.clone())
    } else {
        None
    };
    if interactive {
        watch_ctrl_c(shared.clone());
    }
    let out = worker::run(shared.clone());
    if let Some(p) = printer {
        p.finish();
    }
    let out = out?;
    Ok((build_result(&plan, &out), shared.interrupted()))
}

/// A detached thread that turns the first Ctrl-C into [`worker::Shared::interrupt`] and the
/// second into exit code 130. If the handler cannot be installed, Ctrl-C keeps its default.
fn watch_ctrl_c(shared: Arc<worker::Shared>) {
    let _ = std::thread::Builder::new()
        .name("bench-ctrl-c".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    shared.interrupt();
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                }
            });
        });
}

fn build_result(plan: &plan::Plan, out: &worker::EngineOutput) -> BenchResult {
    let st = &out.stats;
    let elapsed = out
        .finished
        .saturating_duration_since(out.measure_start)
        .as_secs_f64();
    let per_s = |v: u64| {
        if elapsed > 0.0 {
            v as f64 / elapsed
        } else {
            0.0
        }
    };
    let e = |k: ErrorKind| st.errors[k.index()];
    let errors = report::ErrorCounts {
        connect: e(ErrorKind::Connect),
        timeout: e(ErrorKind::Timeout),
        reset: e(ErrorKind::Reset),
        assertion: e(ErrorKind::Assertion),
        other: e(ErrorKind::Other),
    };
    let targets = plan
        .origins
        .iter()
        .flat_map(|o| {
            o.templates
                .iter()
                .map(|t| format!("{} (weight {})", t.label, t.weight))
        })
        .collect();
    BenchResult {
        tool: "rampart-bench".to_owned(),
        schema: 1,
        settings: report::Settings {
            targets,
            model: match plan.load {
                Load::Closed => "closed".to_owned(),
                Load::Open { .. } => "open".to_owned(),
            },
            rate: match plan.load {
                Load::Open { rate } => Some(rate),
                Load::Closed => None,
            },
            connections: plan.connections,
            streams: plan.streams,
            threads: plan.threads,
            protocol: if plan.http2 { "HTTP/2" } else { "HTTP/1.1" }.to_owned(),
            client: plan.client.name().to_owned(),
            duration_s: match plan.stop {
                Stop::Duration(d) => Some(d.as_secs_f64()),
                Stop::Count(_) => None,
            },
            requests: match plan.stop {
                Stop::Count(n) => Some(n),
                Stop::Duration(_) => None,
            },
            warmup_s: plan.warmup.as_secs_f64(),
        },
        elapsed_s: elapsed,
        requests: st.responses + errors.timeout + errors.reset + errors.other,
        responses: st.responses,
        rps: per_s(st.responses),
        body_bytes: st.body_bytes,
        body_bytes_per_s: per_s(st.body_bytes),
        latency: stats::summarize(&st.latency),
        latency_distribution: stats::distribution(&st.latency),
        status_codes: st
            .status
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(code, n)| (code.to_string(), *n))
            .collect(),
        error_samples: ErrorKind::ALL
            .iter()
            .filter_map(|k| {
                st.samples[k.index()]
                    .clone()
                    .map(|m| (k.name().to_owned(), m))
            })
            .collect(),
        errors,
        warmup_requests: st.warmup_requests,
        timeline: st
            .timeline
            .iter()
            .enumerate()
            .map(|(i, t)| report::TimelinePoint {
                second: i as u64,
                responses: t[0],
                errors: t[1],
            })
            .collect(),
    }
}
