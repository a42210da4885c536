//! `once-loadgen`: the command line over `once_loadgen`'s workloads; prints one JSON object.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use once_loadgen::{
    ClaimStorm, ConnectionMode, LoadConfig, OnceCycle, RustypasteCycle, Stop, run_claim_storm,
    run_get, run_once_cycle, run_rustypaste_cycle,
};

/// A small HTTP/1.1 load generator for once (and rustypaste, for comparison). Prints one JSON
/// object (ops, errors, rate, latency percentiles, statuses) on stdout, up to 5 error messages
/// on stderr, and exits non-zero on any error (or a claim storm without exactly one winner).
#[derive(Parser)]
#[command(name = "once-loadgen", version)]
struct Cli {
    /// Worker threads of the generator's runtime. The default, 1, leaves the other cores to
    /// the server under test (on a 2-core machine, one each); raise it only when the
    /// generator itself is the bottleneck (compare `get` against a tiny route).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// Exit 0 even when operations failed (they are still counted and reported).
    #[arg(long, global = true)]
    allow_errors: bool,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// Repeated GET of one URL (200 expected, body drained): the generator's own ceiling
    /// against a tiny answer, e.g. once's /healthz.
    Get {
        #[arg(long)]
        url: String,
        #[command(flatten)]
        load: Load,
    },
    /// once's small share cycle: create (POST /api/v1/shares), upload to the ticket, claim
    /// (GET /s/ID, 303), download the Location (same bytes); latency per whole cycle.
    OnceCycle {
        /// http://HOST:PORT of the once server.
        #[arg(long)]
        base: String,
        /// An API key (KEYID.SECRET).
        #[arg(long, env = "ONCE_KEY")]
        token: String,
        /// Bytes per share.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// An operation is just the create (e.g. the rate of presigned tickets on S3).
        #[arg(long)]
        create_only: bool,
        #[command(flatten)]
        load: Load,
    },
    /// rustypaste's one-shot: POST / multipart with a `oneshot` part, then GET the URL it
    /// answers (same bytes); latency per cycle.
    RustypasteCycle {
        /// http://HOST:PORT of rustypaste.
        #[arg(long)]
        base: String,
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Sent as `Authorization: TOKEN`.
        #[arg(long)]
        auth: Option<String>,
        #[command(flatten)]
        load: Load,
    },
    /// One share, many claimers: all connections open first, then every GET /s/ID released
    /// at once; exactly one 303 is expected per round.
    ClaimStorm {
        #[arg(long)]
        base: String,
        #[arg(long, env = "ONCE_KEY")]
        token: String,
        /// Claimers (one connection each).
        #[arg(long, default_value_t = 1000)]
        claimers: usize,
        /// Storms, each on a fresh share.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Bytes of each share.
        #[arg(long, default_value_t = 1024)]
        size: usize,
    },
}

#[derive(Args)]
struct Load {
    /// Concurrent clients, each with its own connection(s).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Count operations started within this many seconds (after the warm-up). The default
    /// when neither this nor --count is given: 10.
    #[arg(long, conflicts_with = "count")]
    duration: Option<f64>,
    /// Count this many operations in all (after the warm-up), then stop.
    #[arg(long)]
    count: Option<u64>,
    /// Seconds of operations first that are run but not counted.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// `new`: a fresh TCP connection per HTTP request (`Connection: close`); `keepalive`: one
    /// connection per client, reused (and reopened if the server closes it).
    #[arg(long, value_enum, default_value_t = Connection::Keepalive)]
    connection: Connection,
}

#[derive(Clone, Copy, ValueEnum)]
enum Connection {
    New,
    Keepalive,
}

fn seconds(value: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| anyhow::anyhow!("bad {what}: {value}"))
}

impl Load {
    fn config(&self) -> anyhow::Result<LoadConfig> {
        let stop = match (self.count, self.duration) {
            (Some(count), _) => Stop::Count(count),
            (None, duration) => Stop::Duration(seconds(duration.unwrap_or(10.0), "--duration")?),
        };
        Ok(LoadConfig {
            clients: self.clients,
            connection: match self.connection {
                Connection::New => ConnectionMode::New,
                Connection::Keepalive => ConnectionMode::Keepalive,
            },
            stop,
            warmup: seconds(self.warmup, "--warmup")?,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(&cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("once-loadgen: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn report_errors(first: &[String]) {
    for message in first {
        eprintln!("error: {message}");
    }
}

async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let report = match &cli.workload {
        Workload::Get { url, load } => run_get(&load.config()?, url).await?,
        Workload::OnceCycle {
            base,
            token,
            size,
            create_only,
            load,
        } => {
            let cycle = OnceCycle {
                base: base.clone(),
                token: token.clone(),
                size: *size,
                create_only: *create_only,
            };
            run_once_cycle(&load.config()?, &cycle).await?
        }
        Workload::RustypasteCycle {
            base,
            size,
            auth,
            load,
        } => {
            let cycle = RustypasteCycle {
                base: base.clone(),
                size: *size,
                auth: auth.clone(),
            };
            run_rustypaste_cycle(&load.config()?, &cycle).await?
        }
        Workload::ClaimStorm {
            base,
            token,
            claimers,
            rounds,
            size,
        } => {
            let storm = ClaimStorm {
                base: base.clone(),
                token: token.clone(),
                claimers: *claimers,
                rounds: *rounds,
                size: *size,
            };
            let report = run_claim_storm(&storm).await?;
            println!("{}", serde_json::to_string(&report)?);
            report_errors(&report.first_errors);
            if report.bad_rounds > 0 {
                eprintln!(
                    "once-loadgen: {} of {} rounds without exactly one winner",
                    report.bad_rounds, report.rounds
                );
                return Ok(ExitCode::FAILURE);
            }
            if report.errors > 0 && !cli.allow_errors {
                return Ok(ExitCode::FAILURE);
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    println!("{}", serde_json::to_string(&report)?);
    report_errors(&report.first_errors);
    if report.errors + report.warmup_errors > 0 && !cli.allow_errors {
        eprintln!(
            "once-loadgen: {} errors ({} in the warm-up)",
            report.errors + report.warmup_errors,
            report.warmup_errors
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
