//! `sharecheck gen`: a deterministic workload as JSON Lines, to a file, stdout, or (with
//! `--brokers` on the command line) straight to Kafka.

use super::args::GenArgs;
use anyhow::Context;
use sharecheck::config::Config;
use sharecheck::gen::GenConfig;
use std::io::{BufReader, BufWriter};

/// `to_kafka`: `--brokers` was on the command line.
pub fn run(cfg: Config, a: &GenArgs, to_kafka: bool) -> anyhow::Result<()> {
    let weights: Vec<f64> = a
        .reject_mix
        .split(',')
        .map(|w| w.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .context("--reject-mix takes six comma-separated numbers")?;
    let reject_mix: [f64; 6] = weights
        .try_into()
        .map_err(|_| anyhow::anyhow!("--reject-mix takes exactly six weights"))?;
    let g = GenConfig {
        shares: a.shares,
        seed: a.seed,
        mode: super::gen_mode(&a.mode),
        accepted: a.accepted,
        blocks: a.blocks,
        rejects: a.rejects,
        reject_mix,
        shares_per_job: a.shares_per_job,
        jobs_per_block: a.jobs_per_block,
        sessions: a.sessions,
    };
    if to_kafka {
        anyhow::ensure!(
            a.out.is_none(),
            "gen: --out and --brokers exclude each other (a file, or Kafka)"
        );
        return to_topics(&cfg, g, a);
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
    Ok(())
}

/// `gen --brokers`: the generated workload straight to Kafka, through the same sender as
/// `sharecheck send` (fed by a pipe from the generator thread, so nothing touches a file).
fn to_topics(cfg: &Config, g: GenConfig, a: &GenArgs) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    let opts = super::send::options(a.batch, a.rate)?;
    let (r, w) = std::io::pipe().context("cannot create a pipe")?;
    let seed = g.seed;
    let generator = std::thread::spawn(move || {
        let mut out = BufWriter::with_capacity(1 << 16, w);
        sharecheck::gen::generate(&g, &mut out)
    });
    // When the sender stops early its end of the pipe closes and the generator stops too.
    let sent = super::runtime()?.block_on(sharecheck::kafka::send::run(
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
