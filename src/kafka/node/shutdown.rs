//! Stopping: no more fetching, what is in flight drained within [`super::DRAIN_LIMIT`],
//! the committable offsets committed, and only then the partitions given back.

use super::clients::Shared;
use super::gather::Gatherer;
use super::jobs::JobsReader;
use super::lanes::Stages;
use super::NodeSummary;
use crate::balance::NodeBalance;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// What runs while the node validates, to be stopped in order.
pub struct Running {
    pub gather: Gatherer,
    pub stages: Stages,
    pub delivery: tokio::task::JoinHandle<()>,
    pub progress: tokio::task::JoinHandle<()>,
    pub watchdog: tokio::task::JoinHandle<()>,
    pub balance: Option<NodeBalance>,
    pub jobs: JobsReader,
}

/// Stops the node; returns what it did, or the error that stopped it.
pub async fn stop(sh: &Arc<Shared>, r: Running) -> anyhow::Result<NodeSummary> {
    let Running {
        mut gather,
        stages,
        delivery,
        progress,
        watchdog,
        balance,
        jobs,
    } = r;
    let Stages {
        mut lanes,
        threads,
        fatal,
    } = stages;
    sh.metrics.healthy.store(false, Ordering::Relaxed);
    progress.abort();
    watchdog.abort();
    let t0 = Instant::now();
    tracing::info!("shutting down: draining in-flight batches");
    gather.finish(sh, &mut lanes, &jobs.log).await;
    drop(lanes);
    let deadline = tokio::time::Instant::from_std(t0 + super::DRAIN_LIMIT);
    let drained = tokio::time::timeout_at(deadline, delivery).await.is_ok();
    if !drained {
        tracing::warn!("in-flight batches not acknowledged in time; they will be validated again");
    }
    sh.abort.store(true, Ordering::Relaxed);
    let mut summary = std::mem::take(&mut gather.summary);
    summary.committed = commit(sh).await;
    if let Some(b) = balance {
        for p in sh.ownership.held() {
            tracing::info!(partition = p, "partition stopped");
        }
        // Only now, with the offsets committed, may other nodes take the partitions.
        b.close().await;
    }
    let _ = tokio::task::spawn_blocking(move || {
        jobs.stop();
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
    tracing::info!(
        shares = summary.shares,
        messages = summary.messages,
        dead_letters = summary.dead_letters,
        "stopped after {:.1} s of shutdown",
        t0.elapsed().as_secs_f64()
    );
    if let Some(e) = fatal.lock().unwrap_or_else(|e| e.into_inner()).take() {
        anyhow::bail!(e);
    }
    Ok(summary)
}

/// The final commit of the committable offsets (at_least_once; with exactly_once the
/// transactions committed them). Returns them.
async fn commit(sh: &Arc<Shared>) -> Vec<(i32, i64)> {
    let stored = sh.ownership.committable();
    if stored.is_empty() || sh.tx.is_some() {
        return stored;
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in &stored {
        if let Err(e) =
            tpl.add_partition_offset(&sh.cfg.kafka.topics.shares, *p, Offset::Offset(*o))
        {
            tracing::warn!("final commit not made: {e}");
            return stored;
        }
    }
    let c = sh.clone();
    let r = tokio::task::spawn_blocking(move || c.consumer.commit(&tpl, CommitMode::Sync)).await;
    match r {
        Ok(Ok(())) => tracing::info!(offsets = ?stored, "offsets committed"),
        Ok(Err(e)) => {
            tracing::warn!("final commit failed ({e}); the broker keeps the last periodic commit")
        }
        Err(e) => tracing::warn!("final commit failed: {e}"),
    }
    stored
}
