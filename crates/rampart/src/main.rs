//! The `rampart` command line: `run`, `check`, `demo`, `bench`.
//!
//! Exit codes: 0 success, 1 runtime failure (e.g. a port in use), 64 invalid configuration or
//! arguments.

use std::{io::IsTerminal, net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand, ValueEnum};
use rampart_config::{Config, ConfigErrors, Overrides, RouteConfig, UpstreamConfig};

const EX_CONFIG: u8 = 64;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "An edge gateway in one binary: reverse proxy, RFC 9111 cache, WAF, rate limits, load generator.",
    after_help = "Examples:
  rampart run --upstream http://127.0.0.1:3000      proxy everything on 0.0.0.0:8080
  rampart run --config rampart.toml                 run with a config file
  rampart check --config rampart.toml               validate a config (exit 64 when invalid)
  rampart demo                                      sample backend + gateway on 127.0.0.1:8080
  rampart bench -c 64 -d 10s http://127.0.0.1:8080/ load-generate against a URL"
)]
struct Cli {
    /// Log filter in RUST_LOG syntax (RUST_LOG wins when set). Default: the config's log.level.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Log format: auto (text on a terminal, JSON otherwise), text or json.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Auto,
    Text,
    Json,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start
enum Command {
    /// Run the gateway.
    #[command(after_help = "Examples:
  rampart run --upstream http://127.0.0.1:3000
  rampart run --config /etc/rampart/rampart.toml --listen 0.0.0.0:80")]
    Run(RunArgs),
    /// Validate a config file exactly as `run` would; exit 0 when valid, 64 when not.
    Check {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start a built-in sample backend and the gateway in front of it.
    Demo {
        /// Gateway listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin listen address.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// Backend listen address (port 0 = any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        backend: SocketAddr,
        /// Run only the backend (an origin for benchmarks), not the gateway.
        #[arg(long)]
        backend_only: bool,
    },
    /// Load generator (closed and open model, HDR latency, JSON/HTML reports, baselines).
    Bench(rampart_bench::BenchArgs),
    /// WAF tools.
    #[command(subcommand)]
    Waf(WafCommand),
    /// Purge cached objects through the admin API.
    #[command(after_help = "Examples:
  rampart purge --url https://example.com/products/1
  rampart purge --prefix /static/ --soft
  rampart purge --tag product-1 --tag catalog
  rampart purge --all --admin http://10.0.0.5:9901 --token \"$TOKEN\"")]
    Purge(PurgeArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Summarise an audit log (JSON lines): events by kind, top client IPs, top routes, bans.
    #[command(after_help = "Examples:
  rampart audit report --file /var/log/rampart/audit.jsonl
  rampart audit report --file audit.jsonl --format json")]
    Report {
        /// The audit log; `-` reads standard input.
        #[arg(long, short)]
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum WafCommand {
    /// Run requests (JSON lines, the WAF test-corpus format) through the WAF of a config and
    /// print one verdict per line: `<key> <pass|block|detect> <score> <rule ids>`.
    #[command(after_help = "Examples:
  rampart waf test --config rampart.toml --input requests.jsonl
  echo '{\"value\":\"1 OR 1=1\"}' | rampart waf test --config rampart.toml")]
    Test {
        /// The config whose `[waf]` (and route's `[routes.waf]`) settings apply.
        #[arg(long, short)]
        config: PathBuf,
        /// Requests as JSON lines; default: standard input.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Apply this route's WAF overrides. Default: the global `[waf]` settings.
        #[arg(long)]
        route: Option<String>,
    },
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["url", "prefix", "tag", "all"])))]
struct PurgeArgs {
    /// Admin API base URL.
    #[arg(long, default_value = "http://127.0.0.1:9901")]
    admin: String,
    /// Admin token. Default: read from the token file the gateway wrote
    /// ($XDG_RUNTIME_DIR/rampart/admin.token or $HOME/.rampart/admin.token).
    #[arg(long, env = "RAMPART_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Absolute URL to purge (all its variants); repeatable.
    #[arg(long)]
    url: Vec<String>,
    /// URL or path prefix to purge.
    #[arg(long)]
    prefix: Option<String>,
    /// Cache tag to purge; repeatable.
    #[arg(long)]
    tag: Vec<String>,
    /// Purge everything.
    #[arg(long)]
    all: bool,
    /// Mark stale instead of deleting (served stale while it revalidates).
    #[arg(long)]
    soft: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Config file (TOML). Without it, the embedded defaults plus --upstream are used.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Listen address (replaces server.listen).
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// Upstream URL (without a config file: proxy everything there).
    #[arg(long)]
    upstream: Vec<String>,
    /// Admin listen address (replaces admin.listen).
    #[arg(long)]
    admin: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Bench(args) = cli.command {
        return match rampart_bench::run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EX_CONFIG)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run(args) => {
            let config = match load_run_config(&args) {
                Ok(c) => c,
                Err(e) => return config_failure(&e),
            };
            init_logging(&cli.log_level, cli.log_format, &config);
            let overrides = Arc::new(move |c: &mut Config| apply_flags(c, &args));
            let opts = rampart_app::StartOptions {
                config_path: None,
                reload_overrides: Some(overrides),
            };
            serve(config, opts).await
        }
        Command::Demo {
            listen,
            admin,
            backend,
            backend_only,
        } => demo(&cli, listen, admin, backend, backend_only).await,
        Command::Bench(_) => ExitCode::SUCCESS,
        Command::Purge(args) => purge(args).await,
        Command::Audit(AuditCommand::Report { file, format }) => audit_report(&file, format),
        Command::Waf(WafCommand::Test {
            config,
            input,
            route,
        }) => waf_test(&config, input.as_deref(), route.as_deref()),
    }
}

fn audit_report(path: &std::path::Path, format: ReportFormat) -> ExitCode {
    let report = if path.as_os_str() == "-" {
        rampart_app::audit_report::summarize(std::io::stdin().lock())
    } else {
        std::fs::File::open(path)
            .and_then(|f| rampart_app::audit_report::summarize(std::io::BufReader::new(f)))
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read audit log {}: {e}", path.display());
            return ExitCode::from(66);
        }
    };
    match format {
        ReportFormat::Text => print!("{}", report.to_text()),
        ReportFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    ExitCode::SUCCESS
}

fn waf_test(
    path: &std::path::Path,
    input: Option<&std::path::Path>,
    route: Option<&str>,
) -> ExitCode {
    let config = match rampart_config::load_file(path, &Overrides::from_env()) {
        Ok(c) => c,
        Err(e) => return config_failure(&e),
    };
    let mut errors = Vec::new();
    let mut waf = config.waf.clone();
    waf.enabled = true;
    let Some(engine) = rampart_app::guard::waf_engine(&waf, &mut errors) else {
        return config_failure(&ConfigErrors(errors));
    };
    let (index, route_cfg) = match route {
        None => (0, rampart_config::RouteWafConfig::default()),
        Some(name) => match config.routes.iter().position(|r| r.name == name) {
            Some(i) => (i, config.routes[i].waf.clone()),
            None => {
                eprintln!("error: no route named {name:?} in {}", path.display());
                return ExitCode::from(EX_CONFIG);
            }
        },
    };
    // The route's exclusions apply too (that is what users tune with this command).
    let policy =
        rampart_app::guard::waf_policy(&engine, &config.waf, index, &route_cfg, &mut errors);
    if !errors.is_empty() {
        return config_failure(&ConfigErrors(errors));
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match input {
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => rampart_waf::cli::waf_test(&policy, std::io::BufReader::new(f), &mut out),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", p.display());
                return ExitCode::from(EX_CONFIG);
            }
        },
        None => rampart_waf::cli::waf_test(&policy, std::io::stdin().lock(), &mut out),
    };
    drop(out);
    match result {
        Ok(sum) => {
            eprintln!(
                "{} requests: {} pass, {} block, {} detect, {} invalid",
                sum.total, sum.pass, sum.block, sum.detect, sum.invalid
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn purge(args: PurgeArgs) -> ExitCode {
    let token = match args.token.clone() {
        Some(t) => t,
        None => {
            let path = rampart_admin::default_token_path();
            match std::fs::read_to_string(&path) {
                Ok(t) => t.trim().to_string(),
                Err(e) => {
                    eprintln!(
                        "error: no --token given and cannot read {}: {e}",
                        path.display()
                    );
                    return ExitCode::from(EX_CONFIG);
                }
            }
        }
    };
    let mut body = serde_json::Map::new();
    if !args.url.is_empty() {
        body.insert("urls".into(), serde_json::json!(args.url));
    }
    if let Some(p) = &args.prefix {
        body.insert("prefix".into(), serde_json::json!(p));
    }
    if !args.tag.is_empty() {
        body.insert("tags".into(), serde_json::json!(args.tag));
    }
    if args.all {
        body.insert("all".into(), serde_json::json!(true));
    }
    if args.soft {
        body.insert("soft".into(), serde_json::json!(true));
    }
    let url = format!("{}/cache/purge", args.admin.trim_end_matches('/'));
    match admin_post(&url, &token, serde_json::Value::Object(body).to_string()).await {
        Ok((200, text)) => {
            println!("{}", text.trim());
            ExitCode::SUCCESS
        }
        Ok((status, text)) => {
            eprintln!("error: admin api answered {status}: {}", text.trim());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// POST a JSON body to the admin API (plain HTTP/1.1, bounded by a timeout).
async fn admin_post(url: &str, token: &str, body: String) -> anyhow::Result<(u16, String)> {
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse()?;
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("the admin url must be http://host:port");
    }
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("missing host in admin url"))?
        .clone();
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&addr).await?;
        let (mut tx, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = http::Request::post(uri.path())
            .header(http::header::HOST, authority.as_str())
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        let resp = tx.send_request(req).await?;
        let status = resp.status().as_u16();
        let text = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, String::from_utf8_lossy(&text).into_owned()))
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), exchange)
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))?
}

async fn serve(config: Config, opts: rampart_app::StartOptions) -> ExitCode {
    match rampart_app::start(config, opts).await {
        Ok(app) => {
            // A drain cut short by the timeout is logged; the exit is still clean.
            app.run_until_signal().await;
            ExitCode::SUCCESS
        }
        Err(rampart_app::StartError::Config(e)) => config_failure(&e),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config_failure(e: &ConfigErrors) -> ExitCode {
    for err in &e.0 {
        eprintln!("error: {err}");
    }
    ExitCode::from(EX_CONFIG)
}

fn check(path: &std::path::Path) -> ExitCode {
    let result = rampart_config::load_file(path, &Overrides::from_env()).and_then(|config| {
        // Exactly what `run` does before binding sockets.
        let shared = rampart_app::Shared::new(
            rampart_app::build::access_log_off(),
            &config.cache,
            rampart_app::build::events_off(),
        );
        rampart_app::build(&config, &shared).map(|_| ())
    });
    match result {
        Ok(()) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => config_failure(&e),
    }
}

/// Load the file (or the embedded defaults), then apply the flags.
fn load_run_config(args: &RunArgs) -> Result<Config, ConfigErrors> {
    let mut config = match &args.config {
        Some(p) => {
            // Flags may supply what the file lacks (e.g. --upstream), so validate after them.
            let text = std::fs::read_to_string(p).map_err(|e| {
                ConfigErrors::one(rampart_config::ConfigError::new(
                    "(file)",
                    format!("cannot read {}: {e}", p.display()),
                ))
            })?;
            if args.upstream.is_empty() {
                return rampart_config::load_str(&text, &Overrides::from_env()).map(|mut c| {
                    apply_flags(&mut c, args);
                    c
                });
            }
            rampart_config::load_str_unvalidated(&text, &Overrides::from_env())?
        }
        None => {
            if args.upstream.is_empty() {
                return Err(ConfigErrors::one(rampart_config::ConfigError::new(
                    "(arguments)",
                    "nothing to proxy to: give --upstream URL or --config FILE",
                )));
            }
            rampart_config::load_str_unvalidated("", &Overrides::from_env())?
        }
    };
    apply_flags(&mut config, args);
    let errs = rampart_config::validate::validate(&config);
    if errs.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errs))
    }
}

fn apply_flags(c: &mut Config, args: &RunArgs) {
    if !args.listen.is_empty() {
        c.server.listen = args.listen.clone();
    }
    if let Some(a) = args.admin {
        c.admin.listen = a;
    }
    if !args.upstream.is_empty() {
        match c.upstreams.len() {
            0 => {
                c.upstreams
                    .push(UpstreamConfig::new("default", args.upstream.clone()));
            }
            _ => c.upstreams[0].endpoints = args.upstream.clone(),
        }
        if c.routes.is_empty() {
            let name = c.upstreams[0].name.clone();
            c.routes.push(RouteConfig {
                name: "default".into(),
                upstream: name,
                ..RouteConfig::default()
            });
        }
    }
}

fn init_logging(cli_level: &Option<String>, cli_format: Option<LogFormatArg>, config: &Config) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| cli_level.clone())
        .unwrap_or_else(|| config.log.level.clone());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("warning: invalid log filter {filter:?} ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let json = match cli_format {
        Some(LogFormatArg::Json) => true,
        Some(LogFormatArg::Text) => false,
        Some(LogFormatArg::Auto) | None => match config.log.format {
            rampart_config::LogFormat::Json => true,
            rampart_config::LogFormat::Text => false,
            rampart_config::LogFormat::Auto => !std::io::stderr().is_terminal(),
        },
    };
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn demo(
    cli: &Cli,
    listen: SocketAddr,
    admin: SocketAddr,
    backend: SocketAddr,
    backend_only: bool,
) -> ExitCode {
    let be = match rampart_app::demo::start_backend(backend).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot start the demo backend on {backend}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if backend_only {
        init_logging(&cli.log_level, cli.log_format, &Config::default());
        println!("demo backend on http://{}/ (Ctrl-C to stop)", be.addr);
        let _ = tokio::signal::ctrl_c().await;
        return ExitCode::SUCCESS;
    }
    let text = rampart_app::demo::config_toml(be.addr, listen, admin);
    let config = match rampart_config::load_str(&text, &Overrides::default()) {
        Ok(c) => c,
        Err(e) => return config_failure(&e),
    };
    init_logging(&cli.log_level, cli.log_format, &config);
    println!(
        "Rampart demo\n  backend   http://{b}/\n  gateway   http://{listen}/\n  admin     http://{admin}/  (/healthz /readyz /metrics /stats /config)\n\nTry:\n  curl -i http://{listen}/api/items          cacheable JSON (max-age=60)\n  curl -i http://{listen}/api/time           uncacheable (no-store)\n  curl -i 'http://{listen}/api/slow?ms=500'  a slow endpoint\n  curl -i -X POST http://{listen}/api/login -d '{{\"user\":\"a\",\"password\":\"nope\"}}'   401\n  curl -s http://{admin}/stats\n",
        b = be.addr
    );
    serve(config, rampart_app::StartOptions::default()).await
}
