//! The `sharecheck` command line.

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use sharecheck::config::Config;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "sharecheck",
    version,
    about = "Share validation for Bitcoin mining pools"
)]
struct Cli {
    /// Configuration file (TOML); see config/sharecheck.toml. Flags override it.
    #[arg(long, global = true, env = "SHARECHECK_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides kafka.brokers).
    #[arg(long, global = true, env = "SHARECHECK_BROKERS")]
    brokers: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate shares from JSON Lines (FILE or stdin); one verdict line per share on stdout.
    Verify {
        /// Backend: cpu, cpu:scalar, cpu:sha-ni, cpu:avx2, cpu:avx512, wgpu, opencl, auto.
        #[arg(long)]
        backend: Option<String>,
        /// Device index for wgpu / opencl (see `sharecheck backends`).
        #[arg(long)]
        device: Option<usize>,
        /// CPU worker threads (0 = one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Shares hashed per batch.
        #[arg(long)]
        batch: Option<usize>,
        /// Input file; stdin when absent or "-".
        file: Option<PathBuf>,
    },
    /// Write a deterministic workload of jobs and really mined shares as JSON Lines.
    Gen(GenArgs),
    /// Measure shares/s of each CPU path beside the sha2 and rust-bitcoin baselines.
    Bench(BenchArgs),
    /// Kafka topics of the config.
    Topics {
        #[command(subcommand)]
        action: TopicsCmd,
    },
    /// Send JSON Lines (as `verify` reads them) to Kafka: jobs to the jobs topic, shares as
    /// binary batches keyed by miner session to the shares topic.
    Send {
        /// Shares per message (per miner session).
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Shares per second; 0 sends as fast as the broker takes them.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Input file; stdin when absent or "-".
        file: Option<PathBuf>,
    },
    /// Print the verdicts of a topic as JSON Lines (the lines `verify` prints), from the
    /// beginning.
    Receive {
        /// Stop after this many verdicts (exit status 1 if fewer arrive before --timeout).
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
        /// Topic to read; default kafka.topics.verdicts. Use kafka.topics.blocks for blocks.
        #[arg(long)]
        topic: Option<String>,
        /// Add "src":"PARTITION:OFFSET" (the source share message) to every line.
        #[arg(long)]
        with_source: bool,
    },
    /// Run a validator node: share batches in, verdicts out, until SIGINT or SIGTERM.
    Run {
        /// Backend (overrides backend.kind).
        #[arg(long)]
        backend: Option<String>,
        /// This node's id in the ZooKeeper group (overrides balance.node_id).
        #[arg(long)]
        node_id: Option<String>,
        /// This node's capacity in shares/s (overrides balance.capacity).
        #[arg(long)]
        capacity: Option<f64>,
    },
    /// The validator nodes' group in ZooKeeper mode.
    Cluster {
        #[command(subcommand)]
        action: ClusterCmd,
    },
    /// Measure the node end to end through Kafka beside a raw pass-through (a consumer that
    /// copies the same share messages to another topic), in the same run: shares/s draining a
    /// full topic, and p50/p99 share latency at a steady rate. Uses topics of its own
    /// (sharecheck.bench.<time>.*) on kafka.brokers, deleted again once measured.
    BenchKafka {
        /// Shares in the drain workload.
        #[arg(long, default_value_t = 100_000)]
        shares: u64,
        /// Shares in the latency workload.
        #[arg(long, default_value_t = 30_000)]
        latency_shares: u64,
        /// Send rate of the latency workload, shares per second.
        #[arg(long, default_value_t = 5000.0)]
        rate: f64,
        /// Shares per message (per miner session), as `send --batch`.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The shares generated: stratum, header, or mixed (alternating).
        #[arg(long, default_value = "mixed", value_parser = ["stratum", "header", "mixed"])]
        shares_mode: String,
        /// Miner sessions in the generated workload (as `gen --sessions`).
        #[arg(long, default_value_t = 64)]
        sessions: u32,
        /// Shares between new jobs (as `gen --shares-per-job`). A stratum message holds one
        /// session's shares up to the next job, so stratum messages hold at most
        /// shares-per-job / sessions shares whatever --batch says.
        #[arg(long, default_value_t = 500)]
        shares_per_job: u64,
        /// Drain phases per mode, pass-through and node alternating; medians are reported.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// The broker's process id, when the broker runs on this machine: its CPU time per
        /// share is reported beside this process's and the machine's.
        #[arg(long)]
        broker_pid: Option<u32>,
        /// One JSON object per mode instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List every backend and device, available or not (and why), with its self-test result
    /// and measured shares/s at the configured batch size.
    Backends(BackendsArgs),
}

#[derive(Subcommand)]
enum TopicsCmd {
    /// Create the shares, jobs, verdicts, blocks and dead-letter topics (existing ones are
    /// left as they are).
    Create,
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Members and their capacities, the leader, the assignment and its generation, the
    /// owner of each partition, and each partition's lag (committed offset vs end).
    Status {
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct BackendsArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Batch size to measure at (default: backend.batch.max_shares).
    #[arg(long)]
    batch: Option<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 0.3)]
    seconds: f64,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Backends to measure (comma-separated): CPU paths (scalar, sha-ni, avx2, avx512), wgpu,
    /// opencl, or all; default: every CPU path this CPU supports.
    #[arg(long)]
    backend: Option<String>,
    /// Batch sizes (comma-separated).
    #[arg(long, default_value = "1024,8192")]
    batch: String,
    /// Thread counts (comma-separated; 0 = one per core).
    #[arg(long, default_value = "1,0")]
    threads: String,
    /// header, stratum, or both.
    #[arg(long, default_value = "both", value_parser = ["header", "stratum", "both"])]
    mode: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 0.3)]
    seconds: f64,
}

fn list<T: std::str::FromStr>(s: &str, what: &str) -> anyhow::Result<Vec<T>> {
    s.split(',')
        .map(|x| x.trim().parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("{what}: expected a comma-separated list, got {s:?}"))
}

#[derive(clap::Args)]
struct GenArgs {
    /// Number of shares.
    #[arg(long, default_value_t = 10_000)]
    shares: u64,
    /// Seed: the same seed gives the same output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// stratum, header, or mixed (alternating).
    #[arg(long, default_value = "stratum", value_parser = ["stratum", "header", "mixed"])]
    mode: String,
    /// Fraction of shares that are accepted.
    #[arg(long, default_value_t = 0.90)]
    accepted: f64,
    /// Fraction of shares that are blocks.
    #[arg(long, default_value_t = 0.0005)]
    blocks: f64,
    /// Fraction rejected before hashing, split by --reject-mix; the rest is low_difficulty.
    #[arg(long, default_value_t = 0.06)]
    rejects: f64,
    /// Weights of duplicate,stale,unknown_job,bad_ntime,bad_version,malformed.
    #[arg(long, default_value = "1,1,1,1,1,1")]
    reject_mix: String,
    /// Shares between new jobs.
    #[arg(long, default_value_t = 500)]
    shares_per_job: u64,
    /// Jobs between new blocks (clean_jobs).
    #[arg(long, default_value_t = 10)]
    jobs_per_block: u64,
    /// Miner sessions (distinct extranonce1 values).
    #[arg(long, default_value_t = 64)]
    sessions: u32,
    /// Output file; stdout when absent.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// With --brokers on the command line: the shares topic to send to (default
    /// kafka.topics.shares). The workload then goes to Kafka as `send` sends a file.
    #[arg(long)]
    shares_topic: Option<String>,
    /// With --brokers: the jobs topic (default kafka.topics.jobs).
    #[arg(long)]
    jobs_topic: Option<String>,
    /// With --brokers: shares per message (per miner session), as `send --batch`.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// With --brokers: shares per second; 0 sends as fast as the broker takes them.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
}

fn main() {
    let matches = Cli::command().get_matches();
    // `gen` writes to Kafka only when --brokers is on its command line, not when it comes
    // from SHARECHECK_BROKERS (which is meant for the Kafka commands).
    let brokers_flag = matches.value_source("brokers") == Some(ValueSource::CommandLine)
        || matches.subcommand().is_some_and(|(_, m)| {
            m.try_get_raw("brokers").is_ok()
                && m.value_source("brokers") == Some(ValueSource::CommandLine)
        });
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if let Err(e) = run(cli, brokers_flag) {
        eprintln!("sharecheck: error: {e:#}");
        std::process::exit(2);
    }
}

fn run(cli: Cli, brokers_flag: bool) -> anyhow::Result<()> {
    let mut cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(b) = cli.brokers {
        cfg.kafka.brokers = b;
    }
    match cli.cmd {
        Cmd::Verify {
            backend,
            device,
            threads,
            batch,
            file,
        } => {
            if let Some(b) = backend {
                cfg.backend.kind = b;
            }
            if let Some(d) = device {
                cfg.backend.device = d;
            }
            if let Some(t) = threads {
                cfg.backend.threads = t;
            }
            if let Some(b) = batch {
                cfg.backend.batch.max_shares = b;
            }
            cfg.check()?;
            init_logging(&cfg)?;
            let backend = sharecheck::backend::open_with(
                &sharecheck::backend::Options::from_config(&cfg.backend),
            )?;
            let started = std::time::Instant::now();
            let stdout = std::io::stdout().lock();
            let out = BufWriter::with_capacity(1 << 16, stdout);
            let on_bad_job = |line: u64, msg: &str| {
                eprintln!("sharecheck: line {line}: job skipped: {msg}");
            };
            let summary = match file.as_deref() {
                Some(p) if p.as_os_str() != "-" => {
                    let f = std::fs::File::open(p)
                        .with_context(|| format!("cannot open {}", p.display()))?;
                    sharecheck::verify::run(
                        BufReader::with_capacity(1 << 16, f),
                        out,
                        backend.as_ref(),
                        cfg.validation.clone(),
                        cfg.backend.batch.max_shares,
                        on_bad_job,
                    )?
                }
                _ => sharecheck::verify::run(
                    std::io::stdin().lock(),
                    out,
                    backend.as_ref(),
                    cfg.validation.clone(),
                    cfg.backend.batch.max_shares,
                    on_bad_job,
                )?,
            };
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "sharecheck: {} [{}] in {secs:.2} s ({:.0} shares/s)",
                summary.line(),
                backend.name(),
                summary.shares() as f64 / secs.max(1e-9)
            );
        }
        Cmd::Gen(a) => {
            let weights: Vec<f64> = a
                .reject_mix
                .split(',')
                .map(|w| w.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .context("--reject-mix takes six comma-separated numbers")?;
            let reject_mix: [f64; 6] = weights
                .try_into()
                .map_err(|_| anyhow::anyhow!("--reject-mix takes exactly six weights"))?;
            let g = sharecheck::gen::GenConfig {
                shares: a.shares,
                seed: a.seed,
                mode: match a.mode.as_str() {
                    "header" => sharecheck::gen::GenMode::Header,
                    "mixed" => sharecheck::gen::GenMode::Mixed,
                    _ => sharecheck::gen::GenMode::Stratum,
                },
                accepted: a.accepted,
                blocks: a.blocks,
                rejects: a.rejects,
                reject_mix,
                shares_per_job: a.shares_per_job,
                jobs_per_block: a.jobs_per_block,
                sessions: a.sessions,
            };
            if brokers_flag {
                anyhow::ensure!(
                    a.out.is_none(),
                    "gen: --out and --brokers exclude each other (a file, or Kafka)"
                );
                return gen_to_kafka(cfg, g, &a);
            }
            anyhow::ensure!(
                a.shares_topic.is_none() && a.jobs_topic.is_none(),
                "gen: --shares-topic and --jobs-topic need --brokers HOST:PORT"
            );
            let n = match &a.out {
                Some(p) => {
                    let f = std::fs::File::create(p)
                        .with_context(|| format!("cannot create {}", p.display()))?;
                    sharecheck::gen::generate(&g, &mut BufWriter::with_capacity(1 << 16, f))?
                }
                None => sharecheck::gen::generate(
                    &g,
                    &mut BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
                )?,
            };
            eprintln!("sharecheck: generated {n} shares (seed {})", a.seed);
        }
        Cmd::Bench(a) => bench(a)?,
        Cmd::Topics {
            action: TopicsCmd::Create,
        } => {
            cfg.check()?;
            init_logging(&cfg)?;
            let out = runtime()?.block_on(sharecheck::kafka::create_topics(&cfg.kafka))?;
            for (name, outcome) in out {
                let what = match outcome {
                    sharecheck::kafka::TopicOutcome::Created => "created",
                    sharecheck::kafka::TopicOutcome::Existed => "exists",
                };
                println!("{name}: {what}");
            }
        }
        Cmd::Send { batch, rate, file } => {
            cfg.check()?;
            init_logging(&cfg)?;
            anyhow::ensure!(batch > 0, "--batch must be at least 1");
            anyhow::ensure!(
                rate.is_finite() && rate >= 0.0,
                "--rate must be a number of shares per second (0 = unpaced)"
            );
            let opts = sharecheck::kafka::send::SendOptions {
                batch,
                rate,
                progress: std::time::Duration::from_secs(5),
            };
            let rt = runtime()?;
            let s = match file.as_deref() {
                Some(p) if p.as_os_str() != "-" => {
                    let f = std::fs::File::open(p)
                        .with_context(|| format!("cannot open {}", p.display()))?;
                    rt.block_on(sharecheck::kafka::send::run(
                        &cfg.kafka,
                        BufReader::with_capacity(1 << 16, f),
                        &opts,
                    ))?
                }
                _ => rt.block_on(sharecheck::kafka::send::run(
                    &cfg.kafka,
                    std::io::stdin().lock(),
                    &opts,
                ))?,
            };
            eprintln!(
                "sharecheck: sent {} shares in {} messages and {} jobs in {:.2} s ({:.0} shares/s){}",
                s.shares,
                s.messages,
                s.jobs,
                s.seconds,
                s.shares as f64 / s.seconds.max(1e-9),
                if s.skipped > 0 {
                    format!("; {} share lines without an id skipped", s.skipped)
                } else {
                    String::new()
                }
            );
        }
        Cmd::Receive {
            count,
            timeout,
            topic,
            with_source,
        } => {
            cfg.check()?;
            init_logging(&cfg)?;
            let timeout = match timeout {
                Some(t) if t.is_finite() && t >= 0.0 => Some(std::time::Duration::from_secs_f64(t)),
                Some(_) => anyhow::bail!("--timeout takes a number of seconds"),
                None => None,
            };
            let opts = sharecheck::kafka::receive::ReceiveOptions {
                topic: topic.unwrap_or_else(|| cfg.kafka.topics.verdicts.clone()),
                count,
                timeout,
                with_source,
                progress: std::time::Duration::from_secs(5),
            };
            let mut out = BufWriter::new(std::io::stdout().lock());
            let s = sharecheck::kafka::receive::run(&cfg.kafka, &opts, &mut out)?;
            eprintln!(
                "sharecheck: received {} verdicts in {} messages{}",
                s.verdicts,
                s.messages,
                if s.undecodable > 0 {
                    format!(" ({} undecodable messages skipped)", s.undecodable)
                } else {
                    String::new()
                }
            );
            if let Some(c) = count {
                if s.verdicts < c {
                    eprintln!(
                        "sharecheck: expected {c} verdicts, got {} before the timeout",
                        s.verdicts
                    );
                    std::process::exit(1);
                }
            }
        }
        Cmd::Run {
            backend,
            node_id,
            capacity,
        } => {
            if let Some(b) = backend {
                cfg.backend.kind = b;
            }
            if node_id.is_some() {
                cfg.balance.node_id = node_id;
            }
            if capacity.is_some() {
                cfg.balance.capacity = capacity;
            }
            cfg.check()?;
            init_logging(&cfg)?;
            run_node(cfg)?;
        }
        Cmd::BenchKafka {
            shares,
            latency_shares,
            rate,
            batch,
            seed,
            shares_mode,
            sessions,
            shares_per_job,
            rounds,
            broker_pid,
            json,
        } => {
            cfg.check()?;
            init_logging(&cfg)?;
            anyhow::ensure!(
                shares > 0
                    && latency_shares > 0
                    && batch > 0
                    && rounds > 0
                    && sessions > 0
                    && shares_per_job > 0,
                "--shares, --latency-shares, --batch, --sessions, --shares-per-job and --rounds must be at least 1"
            );
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0,
                "--rate must be a positive number of shares per second"
            );
            let o = sharecheck::kafka::bench::BenchKafkaOptions {
                shares,
                latency_shares,
                rate,
                batch,
                seed,
                shares_mode: match shares_mode.as_str() {
                    "header" => sharecheck::gen::GenMode::Header,
                    "stratum" => sharecheck::gen::GenMode::Stratum,
                    _ => sharecheck::gen::GenMode::Mixed,
                },
                sessions,
                shares_per_job,
                rounds,
                broker_pid,
            };
            let figs = runtime()?.block_on(sharecheck::kafka::bench::run(&cfg, &o))?;
            if json {
                for f in &figs {
                    println!("{}", serde_json::to_string(f)?);
                }
            } else {
                let base = figs[0].drain_shares_per_sec;
                println!(
                    "{:<14} {:>14} {:>8} {:>12} {:>12} {:>12} {:>8} {:>8} {:>8}",
                    "mode",
                    "drain shares/s",
                    "x pass",
                    "cpu ns/share",
                    "all ns/share",
                    "brk ns/share",
                    "p50 ms",
                    "p99 ms",
                    "max ms"
                );
                for f in &figs {
                    println!(
                        "{:<14} {:>14.0} {:>8.2} {:>12.0} {:>12.0} {:>12.0} {:>8.0} {:>8.0} {:>8.0}",
                        f.mode,
                        f.drain_shares_per_sec,
                        f.drain_shares_per_sec / base,
                        f.drain_cpu_ns_per_share,
                        f.drain_machine_cpu_ns_per_share,
                        f.drain_broker_cpu_ns_per_share,
                        f.latency_p50_ms,
                        f.latency_p99_ms,
                        f.latency_max_ms
                    );
                }
                if rounds > 1 {
                    // The ratio of each round's pair: a steadier figure than the ratio of the
                    // medians when the machine's speed drifts.
                    let ratios: Vec<String> = figs[1]
                        .drain_rounds
                        .iter()
                        .zip(&figs[0].drain_rounds)
                        .map(|(n, p)| format!("{:.2}", n / p))
                        .collect();
                    println!("node / pass-through per round: {}", ratios.join(" "));
                }
                println!(
                    "(drain: {shares} shares in {} messages, median of {rounds} round(s), CPU time per share between the first and last output of this process, the whole machine and the broker; latency: {latency_shares} shares at {rate:.0}/s, send to output message)",
                    figs[0].drain_messages
                );
            }
        }
        Cmd::Cluster {
            action: ClusterCmd::Status { json },
        } => {
            cfg.check()?;
            init_logging(&cfg)?;
            cluster_status(&cfg, json)?;
        }
        Cmd::Backends(a) => {
            init_logging(&cfg)?;
            backends(&cfg, a)?
        }
    }
    Ok(())
}

/// `gen --brokers`: the generated workload straight to Kafka, through the same sender as
/// `sharecheck send` (fed by a pipe from the generator thread, so nothing touches a file).
fn gen_to_kafka(mut cfg: Config, g: sharecheck::gen::GenConfig, a: &GenArgs) -> anyhow::Result<()> {
    if let Some(t) = &a.shares_topic {
        cfg.kafka.topics.shares = t.clone();
    }
    if let Some(t) = &a.jobs_topic {
        cfg.kafka.topics.jobs = t.clone();
    }
    cfg.check()?;
    init_logging(&cfg)?;
    anyhow::ensure!(a.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(
        a.rate.is_finite() && a.rate >= 0.0,
        "--rate must be a number of shares per second (0 = unpaced)"
    );
    let opts = sharecheck::kafka::send::SendOptions {
        batch: a.batch,
        rate: a.rate,
        progress: std::time::Duration::from_secs(5),
    };
    let (r, w) = std::io::pipe().context("cannot create a pipe")?;
    let seed = g.seed;
    let generator = std::thread::spawn(move || {
        let mut out = BufWriter::with_capacity(1 << 16, w);
        sharecheck::gen::generate(&g, &mut out)
    });
    // When the sender stops early its end of the pipe closes and the generator stops too.
    let sent = runtime()?.block_on(sharecheck::kafka::send::run(
        &cfg.kafka,
        BufReader::with_capacity(1 << 16, r),
        &opts,
    ));
    let generated = generator
        .join()
        .map_err(|_| anyhow::anyhow!("the generator thread panicked"))?;
    let s = sent?;
    let n = generated?;
    eprintln!(
        "sharecheck: generated {n} shares (seed {seed}) and sent them to {} in {} messages, \
         {} jobs to {}, in {:.2} s ({:.0} shares/s)",
        cfg.kafka.topics.shares,
        s.messages,
        s.jobs,
        cfg.kafka.topics.jobs,
        s.seconds,
        s.shares as f64 / s.seconds.max(1e-9)
    );
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_logging(cfg: &Config) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .map_err(|e| anyhow::anyhow!("log.level {:?}: {e}", cfg.log.level))?;
    // The ZooKeeper client logs every connection at info; sharecheck logs what matters.
    if std::env::var_os("RUST_LOG").is_none() && !cfg.log.level.contains("zookeeper_client") {
        filter = filter.add_directive("zookeeper_client=warn".parse()?);
    }
    // Colours only on a terminal: a log redirected to a file or a journal stays plain text.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let r = if cfg.log.format == "json" {
        b.json().try_init()
    } else {
        b.try_init()
    };
    r.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

fn run_node(cfg: Config) -> anyhow::Result<()> {
    use std::sync::Arc;
    let backend =
        sharecheck::backend::open_with(&sharecheck::backend::Options::from_config(&cfg.backend))?;
    let rt = runtime()?;
    rt.block_on(async move {
        let metrics = Arc::new(sharecheck::metrics::Metrics::new());
        if !cfg.metrics.listen.is_empty() {
            let l = tokio::net::TcpListener::bind(&cfg.metrics.listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on metrics.listen = {:?}; choose a free address or set it to \"\" to turn metrics off",
                        cfg.metrics.listen
                    )
                })?;
            tracing::info!("metrics on http://{}/metrics", l.local_addr()?);
            tokio::spawn(sharecheck::metrics::serve(l, metrics.clone()));
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot install the SIGTERM handler")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("signal received: stopping");
            let _ = tx.send(true);
            // The stop must not outlast its 10 s, whatever the brokers do (see EXIT_LIMIT).
            std::thread::spawn(|| {
                std::thread::sleep(sharecheck::kafka::node::EXIT_LIMIT);
                tracing::warn!(
                    "Kafka clients not closed {:.1} s after the signal (brokers unreachable?); exiting without them",
                    sharecheck::kafka::node::EXIT_LIMIT.as_secs_f64()
                );
                std::process::exit(0);
            });
            // A second signal: stop at once (what is not committed is validated again).
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::warn!("second signal: exiting now, without draining");
            std::process::exit(1);
        });
        let s = sharecheck::kafka::node::run(cfg, backend, metrics, rx).await?;
        eprintln!(
            "sharecheck: node stopped: {} shares in {} messages, {} dead letters; committed {:?}",
            s.shares, s.messages, s.dead_letters, s.committed
        );
        anyhow::Ok(())
    })
}

fn cluster_status(cfg: &Config, json: bool) -> anyhow::Result<()> {
    use sharecheck::balance::status;
    let b = &cfg.balance;
    let zk = runtime()?.block_on(status::read_zk(
        &b.zookeeper,
        &b.group,
        std::time::Duration::from_millis(b.session_timeout_ms),
    ))?;
    let kafka = status::kafka_offsets(cfg)?;
    let s = status::combine(cfg, zk, kafka);
    if json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        print!("{}", status::render(&s));
    }
    Ok(())
}

fn backends(cfg: &Config, a: BackendsArgs) -> anyhow::Result<()> {
    let mut opts = sharecheck::backend::Options::from_config(&cfg.backend);
    if let Some(b) = a.batch {
        anyhow::ensure!(b > 0, "--batch must be > 0");
        opts.batch = b;
    }
    opts.measure = std::time::Duration::from_secs_f64(a.seconds.max(0.01));
    let probes = sharecheck::backend::select::probe_all(&opts, true);
    if a.json {
        for p in &probes {
            println!("{}", serde_json::to_string(p)?);
        }
        return Ok(());
    }
    println!(
        "{:<12} {:>6} {:<44} {:<9} {:<9} {:>12}  note",
        "kind", "device", "name", "available", "self-test", "shares/s"
    );
    for p in &probes {
        println!(
            "{:<12} {:>6} {:<44} {:<9} {:<9} {:>12}  {}",
            p.kind,
            p.device
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            p.name,
            if p.available { "yes" } else { "no" },
            match p.self_test {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "-",
            },
            p.shares_per_sec
                .map(|r| format!("{r:.0}"))
                .unwrap_or_else(|| "-".into()),
            p.reason.as_deref().unwrap_or(""),
        );
    }
    println!("(measured on stratum shares at batch {})", opts.batch);
    Ok(())
}

fn bench(a: BenchArgs) -> anyhow::Result<()> {
    use sharecheck::bench::{self, BenchPlan, Figure};
    let mut engines: Vec<&'static str> = Vec::new();
    // GPU APIs to measure: named ones must open; with `all`, those that cannot are skipped.
    let mut gpus: Vec<(&str, bool)> = Vec::new();
    match &a.backend {
        None => engines = sharecheck::sha256::available(),
        Some(list) => {
            for n in list.split(',').map(str::trim) {
                match n {
                    "all" => {
                        engines.extend(sharecheck::sha256::available());
                        gpus.extend([("wgpu", false), ("opencl", false)]);
                    }
                    "wgpu" | "opencl" => gpus.push((n, true)),
                    n => engines.push(
                        sharecheck::sha256::engine(n.trim_start_matches("cpu:"))
                            .map_err(anyhow::Error::msg)?
                            .name(),
                    ),
                }
            }
        }
    }
    engines.dedup();
    // A fast wrong path must never be reported: check each against the reference first.
    for e in &engines {
        let b = sharecheck::backend::cpu::CpuBackend::new(Some(e), 1)?;
        bench::check_against_reference(&b, &bench::stratum_fixture(300, 1))?;
        bench::check_against_reference(&b, &bench::header_fixture(300, 1))?;
    }
    let plan = BenchPlan {
        engines,
        batches: list(&a.batch, "--batch")?,
        threads: list(&a.threads, "--threads")?,
        modes: match a.mode.as_str() {
            "header" => vec!["header"],
            "stratum" => vec!["stratum"],
            _ => vec!["header", "stratum"],
        },
        time: std::time::Duration::from_secs_f64(a.seconds.max(0.01)),
    };
    anyhow::ensure!(
        plan.batches.iter().all(|&b| b > 0),
        "--batch sizes must be > 0"
    );
    let json = a.json;
    let report = |f: &Figure| {
        if json {
            println!("{}", serde_json::to_string(f).expect("figure serializes"));
        } else {
            eprint!(".");
        }
    };
    let mut figs = bench::run(&plan, report)?;
    for (api, required) in gpus {
        let g = sharecheck::backend::gpu::GpuOptions::default();
        let opened = sharecheck::backend::select::open_gpu(api, &g).and_then(|b| {
            // As for the CPU paths: never report a fast wrong backend.
            sharecheck::backend::select::self_test(b.as_ref())?;
            Ok(b)
        });
        match opened {
            Ok(b) => figs.extend(bench::run_backend(b.as_ref(), &plan, report)?),
            Err(e) if !required => eprintln!("\nsharecheck: {api} skipped: {e:#}"),
            Err(e) => return Err(e),
        }
    }
    if json {
        return Ok(());
    }
    eprintln!();
    println!(
        "{:<24} {:<8} {:>6} {:>7} {:>14} {:>14} {:>8} {:>8}",
        "backend", "mode", "batch", "threads", "shares/s", "per core", "x sha2", "x btc"
    );
    for f in &figs {
        let base = |name: &str| {
            figs.iter()
                .find(|b| b.backend == name && b.mode == f.mode)
                .map(|b| b.shares_per_sec)
                .unwrap_or(f64::NAN)
        };
        // A GPU backend's figure is per device, not per core.
        if f.threads == 0 {
            println!(
                "{:<24} {:<8} {:>6} {:>7} {:>14.0} {:>14} {:>8} {:>8}",
                f.backend, f.mode, f.batch, "-", f.shares_per_sec, "-", "-", "-"
            );
            continue;
        }
        let per_core = f.shares_per_sec / f.threads as f64;
        println!(
            "{:<24} {:<8} {:>6} {:>7} {:>14.0} {:>14.0} {:>8.2} {:>8.2}",
            f.backend,
            f.mode,
            f.batch,
            f.threads,
            f.shares_per_sec,
            per_core,
            per_core / base("baseline:sha2"),
            per_core / base("baseline:rust-bitcoin"),
        );
    }
    Ok(())
}
