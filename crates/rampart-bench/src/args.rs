//! Command-line arguments of `rampart bench` and the small value parsers they use.

use std::path::PathBuf;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  # closed model (like wrk): 50 connections on 2 threads for 30 s, after a 2 s warm-up
  rampart bench -c 50 -t 2 -d 30s --warmup 2s http://127.0.0.1:8080/

  # open model (like wrk2): 5000 req/s constant arrival rate, latency corrected for coordinated omission
  rampart bench --rate 5000 -c 100 -d 60s http://127.0.0.1:8080/api

  # fixed request count, HTTP/2 over TLS with 8 streams per connection, self-signed certificate
  rampart bench -n 100000 --http2 --streams 8 --insecure https://localhost:8443/

  # POST with headers and a body from a file
  rampart bench -m POST -H 'Content-Type: application/json' --body-file req.json http://127.0.0.1:8080/items

  # weighted scenario, JSON + HTML report, fail (exit 1) if >10% worse than the last run
  rampart bench --scenario bench.toml --json now.json --html report.html --baseline last.json --max-regression 10%

Exit codes: 0 done, 1 regression beyond --max-regression, 2 no request got a response.";

/// Arguments of `rampart bench`: a load generator for HTTP/1.1 and HTTP/2 targets.
///
/// Closed model by default (`-c` connections each sending the next request as soon as the
/// previous one completes, like wrk); open model with `--rate` (constant arrival rate spread
/// over the connections, latency measured from each request's intended start, like wrk2).
#[derive(clap::Args, Debug, Clone)]
#[command(after_long_help = EXAMPLES, after_help = EXAMPLES)]
pub struct BenchArgs {
    /// Target URLs (http:// or https:// only). Several URLs share the load equally.
    #[arg(
        value_name = "URL",
        required_unless_present = "scenario",
        conflicts_with = "scenario"
    )]
    pub urls: Vec<String>,

    /// TOML scenario file with weighted requests and assertions, instead of URLs.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,

    /// Connections to open (HTTP/2: connections, each carrying --streams concurrent streams).
    #[arg(short = 'c', long, value_name = "N", default_value_t = 50)]
    pub connections: u32,

    /// Worker threads, each with its own single-threaded runtime [default: CPU count, at most -c].
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<u32>,

    /// Measured duration, e.g. 30s, 2m (a bare number is seconds) [default: 10s unless -n].
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,

    /// Stop after this many measured requests instead of after a duration.
    #[arg(short = 'n', long, value_name = "N")]
    pub requests: Option<u64>,

    /// Warm-up before measuring; its requests are sent but excluded from the results.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,

    /// Open model: constant arrival rate in requests per second (e.g. 5000 or 5000/s).
    #[arg(long, value_name = "R/s", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Speak HTTP/2: h2c with prior knowledge for http://, ALPN h2 for https://.
    #[arg(long)]
    pub http2: bool,

    /// Concurrent streams per HTTP/2 connection.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "http2")]
    pub streams: u32,

    /// Request method [default: GET].
    #[arg(short = 'm', long, value_name = "METHOD")]
    pub method: Option<String>,

    /// Extra request header 'Name: value' (repeatable; with --scenario, added to every request).
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,

    /// Request body, inline.
    #[arg(short = 'b', long, value_name = "BODY", conflicts_with = "body_file")]
    pub body: Option<String>,

    /// Request body read from a file.
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,

    /// Per-request timeout (also bounds each connect and TLS handshake); a request exceeding it
    /// counts as a timeout error.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,

    /// Run HTTP/1.1 on hyper's client instead of the built-in one (slower; kept for
    /// comparison and as a fallback). HTTP/2 always uses hyper.
    #[arg(long, conflicts_with = "http2")]
    pub hyper_h1: bool,

    /// Skip TLS certificate verification (self-signed test servers).
    #[arg(long, short = 'k')]
    pub insecure: bool,

    /// Write the full result as JSON to FILE (usable later as --baseline).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write a self-contained HTML report (latency distribution and throughput plots) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Compare with a previous --json result; exit 1 if throughput fell or p99 rose too much.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Tolerated regression against --baseline, e.g. 10% (a bare number is percent).
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, default_value = "10%")]
    pub max_regression: f64,
}

impl BenchArgs {
    /// Parses arguments as `rampart bench` would (the first item is the program name), for
    /// embedding and tests: `BenchArgs::try_parse_from(["bench", "-n", "100", "http://127.0.0.1:8080/"])`.
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        #[command(name = "bench")]
        struct Wrapper {
            #[command(flatten)]
            args: BenchArgs,
        }
        <Wrapper as clap::Parser>::try_parse_from(args).map(|w| w.args)
    }
}

/// Parses `30s`, `1m30s`, `250ms` (humantime) or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| format!("invalid duration {s:?}: {e}"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?}: {e} (try 30s, 2m, 500ms)"))
}

/// Parses a rate: `5000`, `5000/s`, `300/m` (per minute), `2.5k/s` is not accepted. Must be > 0.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" | "sec" | "second" => 1.0,
                "m" | "min" | "minute" => 60.0,
                other => {
                    return Err(format!(
                        "invalid rate {s:?}: unknown unit {other:?} (use /s or /m)"
                    ));
                }
            };
            (n.trim(), per)
        }
        None => (t, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| {
        format!("invalid rate {s:?}: expected a number of requests per second, e.g. 5000 or 5000/s")
    })?;
    let v = v / per;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("invalid rate {s:?}: must be greater than zero"));
    }
    Ok(v)
}

/// Parses `10%` or `10` (both ten percent) into the fraction `0.10`. Must be within 0..=1000%.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let num = t.strip_suffix('%').unwrap_or(t).trim();
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid percentage {s:?}: expected e.g. 10%"))?;
    if !v.is_finite() || !(0.0..=1000.0).contains(&v) {
        return Err(format!(
            "invalid percentage {s:?}: must be between 0% and 1000%"
        ));
    }
    Ok(v / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_a_typical_command_line() {
        let cli = Cli::try_parse_from([
            "bench",
            "-c",
            "8",
            "-t",
            "2",
            "-d",
            "5s",
            "--warmup",
            "1s",
            "-H",
            "A: b",
            "-H",
            "C: d",
            "--rate",
            "100/s",
            "http://x/",
        ])
        .unwrap();
        assert_eq!(cli.args.connections, 8);
        assert_eq!(cli.args.threads, Some(2));
        assert_eq!(cli.args.duration, Some(Duration::from_secs(5)));
        assert_eq!(cli.args.warmup, Duration::from_secs(1));
        assert_eq!(cli.args.headers.len(), 2);
        assert_eq!(cli.args.rate, Some(100.0));
        assert!((cli.args.max_regression - 0.10).abs() < 1e-12);
    }

    #[test]
    fn conflicting_options_are_refused() {
        assert!(Cli::try_parse_from(["bench", "-d", "5s", "-n", "10", "http://x/"]).is_err());
        assert!(Cli::try_parse_from(["bench", "--scenario", "s.toml", "http://x/"]).is_err());
        assert!(Cli::try_parse_from(["bench"]).is_err());
        assert!(Cli::try_parse_from(["bench", "--streams", "4", "http://x/"]).is_err());
        assert!(
            Cli::try_parse_from(["bench", "-b", "x", "--body-file", "f", "http://x/"]).is_err()
        );
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5x").is_err());
        assert_eq!(parse_rate("5000").unwrap(), 5000.0);
        assert_eq!(parse_rate("5000/s").unwrap(), 5000.0);
        assert_eq!(parse_rate("120/m").unwrap(), 2.0);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-3").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("10/h").is_err());
        assert!((parse_percent("10%").unwrap() - 0.1).abs() < 1e-12);
        assert!((parse_percent("2.5").unwrap() - 0.025).abs() < 1e-12);
        assert!(parse_percent("-1%").is_err());
        assert!(parse_percent("ten").is_err());
    }
}
