//! Manual runs of the load generator before the `rampart` binary wires `rampart bench`:
//! `cargo run --release -p rampart-bench --example bench -- -c 50 -d 10s http://127.0.0.1:8080/`

use clap::Parser;

/// Same arguments as `rampart bench`.
#[derive(Parser)]
#[command(name = "bench", version)]
struct Cli {
    #[command(flatten)]
    args: rampart_bench::BenchArgs,
}

fn main() -> std::process::ExitCode {
    match rampart_bench::run(Cli::parse().args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(64)
        }
    }
}
