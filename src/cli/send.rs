//! `sharecheck send`: JSON Lines to Kafka, jobs to the jobs topic and shares as binary batches
//! to the shares topic.

use super::args::SendArgs;
use sharecheck::config::Config;
use sharecheck::kafka::send::SendOptions;

pub fn run(cfg: &Config, a: SendArgs) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    let opts = options(a.batch, a.rate)?;
    let rt = super::runtime()?;
    let input = super::input(a.file.as_deref())?;
    let s = rt.block_on(sharecheck::kafka::send::run(&cfg.kafka, input, &opts))?;
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
    Ok(())
}

/// The sender's settings from `--batch` and `--rate` (of `send`, and of `gen --brokers`).
pub fn options(batch: usize, rate: f64) -> anyhow::Result<SendOptions> {
    anyhow::ensure!(batch > 0, "--batch must be at least 1");
    anyhow::ensure!(
        rate.is_finite() && rate >= 0.0,
        "--rate must be a number of shares per second (0 = unpaced)"
    );
    Ok(SendOptions {
        batch,
        rate,
        progress: std::time::Duration::from_secs(5),
    })
}
