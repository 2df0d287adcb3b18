//! The command line as clap reads it. What the flags do to the configuration is in
//! [`super::config`]; each command's work is in its own module.

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use sharecheck::config::BackendKind;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "sharecheck",
    version,
    about = "Share validation for Bitcoin mining pools"
)]
pub struct Cli {
    /// Configuration file (TOML); see config/sharecheck.toml. Flags override it.
    #[arg(long, global = true, env = "SHARECHECK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides kafka.brokers).
    #[arg(long, global = true, env = "SHARECHECK_BROKERS")]
    pub brokers: Option<String>,
    /// `--brokers` came from the command line, not from SHARECHECK_BROKERS: `gen` writes to
    /// Kafka only then (the variable is meant for the Kafka commands).
    #[arg(skip)]
    pub brokers_on_command_line: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

impl Cli {
    /// Reads the command line; exits with clap's message and status on an error.
    pub fn from_command_line() -> Cli {
        let matches = Cli::command().get_matches();
        let on_command_line = matches.value_source("brokers") == Some(ValueSource::CommandLine)
            || matches.subcommand().is_some_and(|(_, m)| {
                m.try_get_raw("brokers").is_ok()
                    && m.value_source("brokers") == Some(ValueSource::CommandLine)
            });
        let mut cli = match Cli::from_arg_matches(&matches) {
            Ok(c) => c,
            Err(e) => e.exit(),
        };
        cli.brokers_on_command_line = on_command_line;
        cli
    }
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Validate shares from JSON Lines (FILE or stdin); one verdict line per share on stdout.
    Verify(VerifyArgs),
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
    Send(SendArgs),
    /// Print the verdicts of a topic as JSON Lines (the lines `verify` prints), from the
    /// beginning.
    Receive(ReceiveArgs),
    /// Run a validator node: share batches in, verdicts out, until SIGINT or SIGTERM.
    Run(RunArgs),
    /// The validator nodes' group in ZooKeeper mode.
    Cluster {
        #[command(subcommand)]
        action: ClusterCmd,
    },
    /// Measure the node end to end through Kafka beside a raw pass-through (a consumer that
    /// copies the same share messages to another topic), in the same run: shares/s draining a
    /// full topic, and p50/p99 share latency at a steady rate. Uses topics of its own
    /// (sharecheck.bench.<time>.*) on kafka.brokers, deleted again once measured.
    BenchKafka(BenchKafkaArgs),
    /// List every backend and device, available or not (and why), with its self-test result
    /// and measured shares/s at the configured batch size.
    Backends(BackendsArgs),
    /// The job maker: block templates from the Bitcoin node ([bitcoind]) into stratum jobs
    /// on the jobs topic ([jobs]), until SIGINT or SIGTERM. Several may run; one publishes.
    Jobs,
    /// The block submitter: every block candidate on the blocks topic rebuilt into its block
    /// and submitted to the Bitcoin node(s), until SIGINT or SIGTERM.
    Blocks,
    /// A Stratum V1 gateway ([stratum]): miners connect, their submits are validated by the
    /// nodes through Kafka and answered with the verdict, until SIGINT or SIGTERM.
    Stratum(StratumArgs),
    /// A load test of a stratum gateway: sessions that really mine at the gateway's
    /// difficulty, submitting at a total rate; prints replies by code and latency.
    Mine(MineArgs),
}

#[derive(clap::Args)]
pub struct StratumArgs {
    /// Address to listen on (overrides stratum.listen).
    #[arg(long)]
    pub listen: Option<String>,
    /// This gateway's number, 0-255 (overrides stratum.instance).
    #[arg(long)]
    pub instance: Option<u8>,
    /// Address of its /metrics and /healthz, "" for none (overrides stratum.metrics_listen).
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

#[derive(clap::Args)]
pub struct MineArgs {
    /// The gateway, HOST:PORT; default stratum.listen.
    #[arg(long)]
    pub stratum: Option<String>,
    /// Sessions (connections).
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,
    /// Submits a second over all sessions.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Worker name each session authorizes.
    #[arg(long, default_value = "sharecheck-mine")]
    pub worker: String,
    /// Difficulty to suggest (mining.suggest_difficulty); the gateway keeps it within its
    /// bounds.
    #[arg(long)]
    pub difficulty: Option<f64>,
}

#[derive(Subcommand)]
pub enum TopicsCmd {
    /// Create every topic of [kafka.topics] (existing ones are
    /// left as they are).
    Create,
}

#[derive(Subcommand)]
pub enum ClusterCmd {
    /// Members and their capacities, the leader, the assignment and its generation, the
    /// owner of each partition, and each partition's lag (committed offset vs end).
    Status {
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct BackendsArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Batch size to measure at (default: backend.batch.max_shares).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 0.3)]
    pub seconds: f64,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Backends to measure (comma-separated): CPU paths (scalar, sha-ni, avx2, avx512), wgpu,
    /// opencl, or all; default: every CPU path this CPU supports.
    #[arg(long)]
    pub backend: Option<String>,
    /// Batch sizes (comma-separated).
    #[arg(long, default_value = "1024,8192")]
    pub batch: String,
    /// Thread counts (comma-separated; 0 = one per core).
    #[arg(long, default_value = "1,0")]
    pub threads: String,
    /// header (free-standing headers), standard (SV2 standard shares: the headers of a few
    /// jobs and versions), stratum, or all (`both` is the same, as before).
    #[arg(long, default_value = "all", value_parser = ["header", "standard", "stratum", "all", "both"])]
    pub mode: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 0.3)]
    pub seconds: f64,
}

#[derive(clap::Args)]
pub struct GenArgs {
    /// Number of shares.
    #[arg(long, default_value_t = 10_000)]
    pub shares: u64,
    /// Seed: the same seed gives the same output.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// stratum, header, mixed (stratum and header alternating), sv2-standard, sv2-extended,
    /// or all (the four kinds in turn).
    #[arg(long, default_value = "stratum", value_parser = sharecheck::gen::MODE_NAMES)]
    pub mode: String,
    /// Fraction of shares that are accepted.
    #[arg(long, default_value_t = 0.90)]
    pub accepted: f64,
    /// Fraction of shares that are blocks.
    #[arg(long, default_value_t = 0.0005)]
    pub blocks: f64,
    /// Fraction rejected before hashing, split by --reject-mix; the rest is low_difficulty.
    #[arg(long, default_value_t = 0.06)]
    pub rejects: f64,
    /// Weights of duplicate,stale,unknown_job,bad_ntime,bad_version,malformed.
    #[arg(long, default_value = "1,1,1,1,1,1")]
    pub reject_mix: String,
    /// Shares between new jobs.
    #[arg(long, default_value_t = 500)]
    pub shares_per_job: u64,
    /// Jobs between new blocks (clean_jobs).
    #[arg(long, default_value_t = 10)]
    pub jobs_per_block: u64,
    /// Miner sessions (distinct extranonce1 values).
    #[arg(long, default_value_t = 64)]
    pub sessions: u32,
    /// Output file; stdout when absent.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// With --brokers on the command line: the shares topic to send to (default
    /// kafka.topics.shares). The workload then goes to Kafka as `send` sends a file.
    #[arg(long)]
    pub shares_topic: Option<String>,
    /// With --brokers: the jobs topic (default kafka.topics.jobs).
    #[arg(long)]
    pub jobs_topic: Option<String>,
    /// With --brokers: shares per message (per miner session), as `send --batch`.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// With --brokers: shares per second; 0 sends as fast as the broker takes them.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Backend: cpu, cpu:scalar, cpu:sha-ni, cpu:avx2, cpu:avx512, wgpu, opencl, auto.
    #[arg(long)]
    pub backend: Option<BackendKind>,
    /// Device index for wgpu / opencl (see `sharecheck backends`).
    #[arg(long)]
    pub device: Option<usize>,
    /// CPU worker threads (0 = one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Shares hashed per batch.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Audit historical headers: judge each header share against its own nbits, without a
    /// job. Without it (and always in a node) a header share must belong to a job that
    /// states its merkle root (prevhash, merkle root and nbits), or it is unknown_job.
    #[arg(long)]
    pub audit_headers: bool,
    /// Input file; stdin when absent or "-".
    pub file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct SendArgs {
    /// Shares per message (per miner session).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Shares per second; 0 sends as fast as the broker takes them.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Input file; stdin when absent or "-".
    pub file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ReceiveArgs {
    /// Stop after this many verdicts (exit status 1 if fewer arrive before --timeout).
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Topic to read; default kafka.topics.verdicts. Use kafka.topics.blocks for blocks.
    #[arg(long)]
    pub topic: Option<String>,
    /// Add "src":"PARTITION:OFFSET" (the source share message) to every line.
    #[arg(long)]
    pub with_source: bool,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Backend (overrides backend.kind).
    #[arg(long)]
    pub backend: Option<BackendKind>,
    /// This node's id in the ZooKeeper group (overrides balance.node_id).
    #[arg(long)]
    pub node_id: Option<String>,
    /// This node's capacity in shares/s (overrides balance.capacity).
    #[arg(long)]
    pub capacity: Option<f64>,
    /// Address of its /metrics, /healthz and /readyz, "" for none (overrides
    /// metrics.listen): several nodes on one host each need their own.
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

#[derive(clap::Args)]
pub struct BenchKafkaArgs {
    /// Shares in the drain workload.
    #[arg(long, default_value_t = 100_000)]
    pub shares: u64,
    /// Shares in the latency workload.
    #[arg(long, default_value_t = 30_000)]
    pub latency_shares: u64,
    /// Send rate of the latency workload, shares per second.
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// Shares per message (per miner session), as `send --batch`.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The shares generated: stratum, header, or mixed (alternating).
    #[arg(long, default_value = "mixed", value_parser = sharecheck::gen::MODE_NAMES)]
    pub shares_mode: String,
    /// Miner sessions in the generated workload (as `gen --sessions`).
    #[arg(long, default_value_t = 64)]
    pub sessions: u32,
    /// Shares between new jobs (as `gen --shares-per-job`). A stratum message holds one
    /// session's shares up to the next job, so stratum messages hold at most
    /// shares-per-job / sessions shares whatever --batch says.
    #[arg(long, default_value_t = 500)]
    pub shares_per_job: u64,
    /// Drain phases per mode, pass-through and node alternating; medians are reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// The broker's process id, when the broker runs on this machine: its CPU time per
    /// share is reported beside this process's and the machine's.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// One JSON object per mode instead of a table.
    #[arg(long)]
    pub json: bool,
}
