//! `sharecheck stratum` (the gateway) and `sharecheck mine` (its load test).

use super::args::MineArgs;
use sharecheck::config::Config;
use sharecheck::stratum::load::{self, MineOptions};
use std::time::Duration;

pub fn gateway(cfg: &Config) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    super::runtime()?.block_on(sharecheck::stratum::run(cfg))
}

pub fn mine(cfg: &Config, a: MineArgs) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    anyhow::ensure!(
        a.duration.is_finite() && a.duration > 0.0,
        "--duration takes a number of seconds > 0"
    );
    let o = MineOptions {
        stratum: a.stratum.unwrap_or_else(|| cfg.stratum.listen.clone()),
        sessions: a.sessions,
        rate: a.rate,
        duration: Duration::from_secs_f64(a.duration),
        worker: a.worker,
        difficulty: a.difficulty,
    };
    let s = super::runtime()?.block_on(load::run(&o))?;
    let ms = |q: f64| {
        s.quantile(q)
            .map_or("-".into(), |x| format!("{:.2} ms", x * 1e3))
    };
    let secs = s.elapsed.as_secs_f64();
    println!(
        "sessions {} ({} failed), submitted {} in {secs:.1} s ({:.0}/s)",
        s.sessions,
        s.failed_sessions,
        s.submitted,
        s.submitted as f64 / secs
    );
    let rejected: Vec<String> = s
        .rejected
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    println!(
        "accepted {}, rejected {{{}}}",
        s.accepted,
        rejected.join(", ")
    );
    println!(
        "submit->reply p50 {}, p99 {}, max {}",
        ms(0.5),
        ms(0.99),
        ms(1.0)
    );
    if let Some(f) = &s.first_failure {
        eprintln!("sharecheck: first session failure: {f}");
    }
    if s.submitted == 0 {
        anyhow::bail!("no share was submitted");
    }
    Ok(())
}
