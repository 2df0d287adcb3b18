//! `sharecheck receive`: the verdicts of a topic as JSON Lines, from the beginning.

use super::args::ReceiveArgs;
use sharecheck::config::Config;
use std::io::BufWriter;

pub fn run(cfg: &Config, a: ReceiveArgs) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    let timeout = match a.timeout {
        Some(t) if t.is_finite() && t >= 0.0 => Some(std::time::Duration::from_secs_f64(t)),
        Some(_) => anyhow::bail!("--timeout takes a number of seconds"),
        None => None,
    };
    let opts = sharecheck::kafka::receive::ReceiveOptions {
        topic: a.topic.unwrap_or_else(|| cfg.kafka.topics.verdicts.clone()),
        count: a.count,
        timeout,
        with_source: a.with_source,
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
    if let Some(c) = a.count {
        if s.verdicts < c {
            eprintln!(
                "sharecheck: expected {c} verdicts, got {} before the timeout",
                s.verdicts
            );
            std::process::exit(1);
        }
    }
    Ok(())
}
