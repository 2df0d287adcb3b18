//! `sharecheck jobs` and `sharecheck blocks`: the two services between the pool and its
//! Bitcoin node, each a loop on a thread of its own until SIGINT or SIGTERM.

use sharecheck::chain::rpc::Rpc;
use sharecheck::config::Config;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub fn jobs(cfg: &Config) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    // Refused before anything connects: a job maker without a payout makes no job.
    sharecheck::chain::jobs::payout_script(&cfg.jobs)?;
    let rpc = Rpc::new(&cfg.bitcoind)?;
    let s = until_signal(|stop| sharecheck::chain::jobs::run(cfg, &rpc, stop))?;
    eprintln!(
        "sharecheck: job maker stopped: {} jobs published ({} clean) in {} terms as the active one",
        s.jobs, s.clean_jobs, s.terms
    );
    Ok(())
}

pub fn blocks(cfg: &Config) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    let rpc = Rpc::new(&cfg.bitcoind)?;
    let s = until_signal(|stop| sharecheck::chain::blocks::run(cfg, &rpc, stop))?;
    eprintln!(
        "sharecheck: block submitter stopped: {} accepted, {} duplicate, {} rejected, {} not buildable",
        s.accepted, s.duplicate, s.rejected, s.unbuildable
    );
    Ok(())
}

/// Runs `f` with a flag that SIGINT or SIGTERM raises; a second signal exits at once.
fn until_signal<T>(f: impl FnOnce(&AtomicBool) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let stop = Arc::new(AtomicBool::new(false));
    let rt = super::runtime()?;
    let flag = stop.clone();
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received: stopping");
        flag.store(true, Ordering::Relaxed);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        std::process::exit(1);
    });
    let r = f(&stop)?;
    rt.shutdown_background();
    Ok(r)
}
