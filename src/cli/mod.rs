//! The commands of the `sharecheck` binary, one module each, and what they share: the
//! configuration they run with (the file, then the flags that override it), the async
//! runtime, logging and the input of the commands that read JSON Lines.

pub mod args;
mod backends;
mod bench;
mod bench_kafka;
mod chain;
mod cluster;
mod gen;
mod logging;
mod receive;
mod run;
mod send;
mod stratum;
mod topics;
mod verify;

use anyhow::Context;
use args::{Cli, ClusterCmd, Cmd, TopicsCmd};
use logging::init_logging;
use sharecheck::config::Config;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Runs the command of `cli`.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let cfg = config(&cli)?;
    let kafka = matches!(
        cli.cmd,
        Cmd::Topics { .. }
            | Cmd::Send(_)
            | Cmd::Receive(_)
            | Cmd::Run(_)
            | Cmd::Cluster { .. }
            | Cmd::BenchKafka(_)
            | Cmd::Jobs
            | Cmd::Blocks
            | Cmd::Stratum(_)
    );
    if kafka {
        sharecheck::kafka::access::check_access(&cfg.kafka)?;
    }
    match cli.cmd {
        Cmd::Verify(a) => verify::run(&cfg, a),
        Cmd::Gen(a) => gen::run(cfg, &a, cli.brokers_on_command_line),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Topics {
            action: TopicsCmd::Create,
        } => topics::create(&cfg),
        Cmd::Send(a) => send::run(&cfg, a),
        Cmd::Receive(a) => receive::run(&cfg, a),
        Cmd::Run(_) => run::run(cfg),
        Cmd::Cluster {
            action: ClusterCmd::Status { json },
        } => cluster::status(&cfg, json),
        Cmd::BenchKafka(a) => bench_kafka::run(&cfg, a),
        Cmd::Backends(a) => backends::run(&cfg, a),
        Cmd::Jobs => chain::jobs(&cfg),
        Cmd::Blocks => chain::blocks(&cfg),
        Cmd::Stratum(_) => stratum::gateway(&cfg),
        Cmd::Mine(a) => stratum::mine(&cfg, a),
    }
}

/// The configuration a command runs with: the file (or the defaults) with every flag that
/// overrides a key applied, checked once here, so that no command sees a value the checks
/// would refuse.
fn config(cli: &Cli) -> anyhow::Result<Config> {
    let mut cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    set(&mut cfg.kafka.brokers, &cli.brokers);
    match &cli.cmd {
        Cmd::Verify(a) => {
            let b = &mut cfg.backend;
            set(&mut b.kind, &a.backend);
            set(&mut b.device, &a.device);
            set(&mut b.threads, &a.threads);
            set(&mut b.batch.max_shares, &a.batch);
        }
        Cmd::Run(a) => {
            set(&mut cfg.backend.kind, &a.backend);
            if a.node_id.is_some() {
                cfg.balance.node_id.clone_from(&a.node_id);
            }
            if a.capacity.is_some() {
                cfg.balance.capacity = a.capacity;
            }
            set(&mut cfg.metrics.listen, &a.metrics_listen);
        }
        Cmd::Stratum(a) => {
            set(&mut cfg.stratum.listen, &a.listen);
            set(&mut cfg.stratum.instance, &a.instance);
            set(&mut cfg.stratum.metrics_listen, &a.metrics_listen);
        }
        Cmd::Gen(a) => {
            set(&mut cfg.kafka.topics.shares, &a.shares_topic);
            set(&mut cfg.kafka.topics.jobs, &a.jobs_topic);
        }
        _ => {}
    }
    cfg.check()?;
    Ok(cfg)
}

/// `key = flag` when the flag is given.
fn set<T: Clone>(key: &mut T, flag: &Option<T>) {
    if let Some(v) = flag {
        key.clone_from(v);
    }
}

/// Ends the process at once, from any thread, while Kafka clients still run: without the C
/// library's exit handlers. `exit` runs OpenSSL's, which frees what librdkafka's threads are
/// still using over TLS: a node stopped by a signal while it started over SASL_SSL crashed
/// so (SIGSEGV). Standard error is unbuffered, and the node writes nothing to stdout.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and does not return.
    unsafe { libc::_exit(code) }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The JSON Lines a command reads: `file`, or stdin when it is absent or "-".
fn input(file: Option<&Path>) -> anyhow::Result<Box<dyn BufRead>> {
    Ok(match file {
        Some(p) if p.as_os_str() != "-" => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            Box::new(BufReader::with_capacity(1 << 16, f))
        }
        _ => Box::new(std::io::stdin().lock()),
    })
}

/// The workload of `gen --mode` and `bench-kafka --shares-mode` (clap admits only these).
fn gen_mode(s: &str) -> sharecheck::gen::GenMode {
    sharecheck::gen::GenMode::from_name(s).unwrap_or(sharecheck::gen::GenMode::Stratum)
}
