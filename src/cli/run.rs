//! `sharecheck run`: a validator node with its metrics listener, stopped by SIGINT or SIGTERM
//! within the node's exit limit.

use anyhow::Context;
use sharecheck::config::Config;
use sharecheck::kafka::node::EXIT_LIMIT;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

pub fn run(cfg: Config) -> anyhow::Result<()> {
    super::init_logging(&cfg)?;
    let backend =
        sharecheck::backend::open_with(&sharecheck::backend::Options::from_config(&cfg.backend))?;
    let rt = super::runtime()?;
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
        let mut term =
            signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let m = metrics.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            // Still starting (waiting for a topic, the group, ZooKeeper): nothing has been
            // fetched, so there is nothing to drain or commit.
            if !m.started.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::info!("signal received while starting: stopping (nothing validated yet)");
                super::exit_now(0);
            }
            tracing::info!("signal received: stopping");
            let _ = tx.send(true);
            // The stop must not outlast its 10 s, whatever the brokers do (see EXIT_LIMIT).
            std::thread::spawn(|| {
                std::thread::sleep(EXIT_LIMIT);
                tracing::warn!(
                    "Kafka clients not closed {:.1} s after the signal (brokers unreachable?); exiting without them",
                    EXIT_LIMIT.as_secs_f64()
                );
                super::exit_now(0);
            });
            // A second signal: stop at once (what is not committed is validated again).
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::warn!("second signal: exiting now, without draining");
            super::exit_now(1);
        });
        let s = sharecheck::kafka::node::run(cfg, backend, metrics, rx).await?;
        eprintln!(
            "sharecheck: node stopped: {} shares in {} messages, {} dead letters; committed {:?}",
            s.shares, s.messages, s.dead_letters, s.committed
        );
        anyhow::Ok(())
    })
}
