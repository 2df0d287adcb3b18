//! `sharecheck bench-kafka`: the node end to end through Kafka beside a raw pass-through.

use super::args::BenchKafkaArgs;
use sharecheck::config::Config;
use sharecheck::kafka::bench::{BenchKafkaOptions, Figure};

pub fn run(cfg: &Config, a: BenchKafkaArgs) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    anyhow::ensure!(
        a.shares > 0
            && a.latency_shares > 0
            && a.batch > 0
            && a.rounds > 0
            && a.sessions > 0
            && a.shares_per_job > 0,
        "--shares, --latency-shares, --batch, --sessions, --shares-per-job and --rounds must be at least 1"
    );
    anyhow::ensure!(
        a.rate.is_finite() && a.rate > 0.0,
        "--rate must be a positive number of shares per second"
    );
    let o = BenchKafkaOptions {
        shares: a.shares,
        latency_shares: a.latency_shares,
        rate: a.rate,
        batch: a.batch,
        seed: a.seed,
        shares_mode: super::gen_mode(&a.shares_mode),
        sessions: a.sessions,
        shares_per_job: a.shares_per_job,
        rounds: a.rounds,
        broker_pid: a.broker_pid,
    };
    let figs = super::runtime()?.block_on(sharecheck::kafka::bench::run(cfg, &o))?;
    if a.json {
        for f in &figs {
            println!("{}", serde_json::to_string(f)?);
        }
    } else {
        print_table(&figs, &a);
    }
    Ok(())
}

fn print_table(figs: &[Figure], a: &BenchKafkaArgs) {
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
    for f in figs {
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
    if a.rounds > 1 {
        // The ratio of each round's pair: a steadier figure than the ratio of the medians when
        // the machine's speed drifts.
        let ratios: Vec<String> = figs[1]
            .drain_rounds
            .iter()
            .zip(&figs[0].drain_rounds)
            .map(|(n, p)| format!("{:.2}", n / p))
            .collect();
        println!("node / pass-through per round: {}", ratios.join(" "));
    }
    println!(
        "(drain: {} shares in {} messages, median of {} round(s), CPU time per share between the first and last output of this process, the whole machine and the broker; latency: {} shares at {:.0}/s, send to output message)",
        a.shares, figs[0].drain_messages, a.rounds, a.latency_shares, a.rate
    );
}
