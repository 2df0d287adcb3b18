//! `sharecheck run`: the validator node.
//!
//! ```text
//!  shares consumer ──► gather ──► lanes: prepare ──► hash ──► deliver
//!  (clients)          (max_shares    (jobs caught up,  (backend,   (verdicts, blocks, dead
//!                      or max_wait)   checks 1–6)       check 7)    letters; offsets completed
//!  jobs reader ──► job log ─────────────┘                           once the broker has them)
//!
//!  ownership: which partitions are held, in which epoch, what is in flight and committable
//! ```
//!
//! The files follow a share message's way: [`clients`], [`gather`], [`lanes`], [`jobs`],
//! [`prepare`], [`hash`], [`deliver`], with [`ownership`] beside them all, [`shutdown`] at
//! the end, and [`balance`] (zookeeper mode's group) at the start. At most `backend.inflight` batches per lane are between the gatherer and the
//! producer; when the limit is reached the gatherer waits, and after a while pauses its
//! partitions.

mod balance;
mod clients;
mod deliver;
mod gather;
mod hash;
mod jobs;
mod lanes;
mod offsets;
mod ownership;
mod prepare;
mod shutdown;

use crate::backend::Backend;
use crate::config::Config;
use crate::metrics::Metrics;
use clients::Shared;
use gather::{Flow, Gatherer};
use ownership::{apply, Ownership};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long shutdown may take from the signal to the final commit; the process must be gone
/// within 10 s, and closing the clients takes the rest.
const DRAIN_LIMIT: Duration = Duration::from_secs(7);
/// From the signal, when the process exits even if closing the Kafka clients has not
/// finished. Closing leaves the consumer group and flushes the producers; with the brokers
/// away librdkafka keeps trying well past 10 s, and by then nothing depends on it: the
/// offsets are committed, or (final commit failed) the uncommitted tail is validated again
/// by the partition's next owner.
pub const EXIT_LIMIT: Duration = Duration::from_secs(9);
/// How often a node that is validating logs its progress (an idle node stays quiet).
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// What the node did, reported when it stops.
#[derive(Debug, Default, Clone)]
pub struct NodeSummary {
    pub shares: u64,
    pub messages: u64,
    pub dead_letters: u64,
    pub committed: Vec<(i32, i64)>,
}

/// Runs the node until `shutdown` turns true.
pub async fn run(
    cfg: Config,
    backend: Box<dyn Backend>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<NodeSummary> {
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let ownership = Arc::new(Ownership::new());
    check_timestamps(&cfg).await?;
    let sh = Arc::new(Shared::connect(
        &cfg,
        ownership,
        metrics.clone(),
        events_tx,
    )?);
    let jobs = jobs::JobsReader::start(&sh)?;
    let mut balance = join_or_subscribe(&sh, backend.as_ref()).await?;
    let k = &cfg.kafka;
    tracing::info!(
        brokers = %k.brokers, group = %k.group_id, shares = %k.topics.shares,
        backend = %backend.name(), balance = %cfg.balance.mode, lanes = cfg.backend.lanes(),
        "validator node started"
    );
    metrics
        .started
        .store(true, std::sync::atomic::Ordering::Relaxed);
    metrics
        .backend_in_service
        .with_label_values(&[&backend.name()])
        .set(1);
    let (mut stages, hashed) = lanes::start(&sh, &jobs.log, Arc::from(backend))?;
    let delivery = deliver::start(&sh, hashed);
    let progress = tokio::spawn(log_progress(metrics.clone()));
    let watchdog = tokio::spawn(ownership::watch_stalls(sh.clone(), jobs.log.clone()));

    let mut gather = Gatherer::new(&sh);
    let mut last_err = Instant::now() - Duration::from_secs(60);
    loop {
        if stages
            .fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            break;
        }
        let flush_at = gather.flush_at();
        let flow = tokio::select! {
            _ = shutdown.changed() => Flow::Stop,
            _ = tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)),
                if flush_at.is_some() => Flow::Continue,
            m = sh.consumer.recv() => match m {
                // A message of a partition given up meanwhile is left to its next owner.
                Ok(m) if !sh.ownership.is_held(m.partition()) => continue,
                Ok(m) => {
                    gather.take(&sh, &m);
                    Flow::Continue
                }
                Err(e) => {
                    if last_err.elapsed() > Duration::from_secs(5) {
                        tracing::warn!("share consumer: {e}");
                        last_err = Instant::now();
                    }
                    continue;
                }
            },
            Some(cmd) = next_command(&mut balance) => {
                apply(&sh, cmd.into());
                continue;
            }
            Some(ev) = events.recv() => {
                apply(&sh, ev);
                continue;
            }
        };
        if flow == Flow::Stop {
            break;
        }
        if gather.due()
            && gather
                .dispatch(&sh, &mut stages.lanes, &jobs.log, &mut shutdown)
                .await
                == Flow::Stop
        {
            break;
        }
    }
    let running = shutdown::Running {
        gather,
        stages,
        delivery,
        progress,
        watchdog,
        balance,
        jobs,
    };
    shutdown::stop(&sh, running).await
}

/// Kafka mode: the consumer group spreads the partitions. ZooKeeper mode: the coordinator
/// does, and the consumer is assigned partitions by hand on its word
/// ([`ownership::OwnershipEvent`]).
async fn join_or_subscribe(
    sh: &Shared,
    backend: &dyn Backend,
) -> anyhow::Result<Option<crate::balance::NodeBalance>> {
    if sh.cfg.balance.is_zookeeper() {
        return Ok(Some(balance::join(&sh.cfg, backend, &sh.metrics).await?));
    }
    let topic = &sh.cfg.kafka.topics.shares;
    sh.consumer
        .subscribe(&[topic])
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {topic}: {e}"))?;
    Ok(None)
}

/// Warns about (or, with `kafka.require_log_append_time`, refuses) shares and jobs topics
/// whose timestamps their producers choose.
async fn check_timestamps(cfg: &Config) -> anyhow::Result<()> {
    let t = &cfg.kafka.topics;
    let found = crate::kafka::create_time_topics(&cfg.kafka, &[&t.shares, &t.jobs]).await;
    let bad = match found {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("cannot read the topics' timestamp type ({e:#})");
            return Ok(());
        }
    };
    for (topic, ts) in &bad {
        let what = format!(
            "topic {topic} has message.timestamp.type={ts}: its producers choose the timestamps \
             that decide staleness and job expiry; set it to LogAppendTime (kafka-configs \
             --alter --add-config message.timestamp.type=LogAppendTime)"
        );
        anyhow::ensure!(!cfg.kafka.require_log_append_time, "{what}");
        tracing::warn!("{what}");
    }
    Ok(())
}

/// The next command of the ZooKeeper coordinator; never ready in Kafka mode.
async fn next_command(
    b: &mut Option<crate::balance::NodeBalance>,
) -> Option<crate::balance::Command> {
    match b {
        Some(b) => b.commands.recv().await,
        None => std::future::pending().await,
    }
}

/// Logs every [`PROGRESS_EVERY`] the verdicts produced since the last line, with the rate,
/// the consumer lag and the jobs held, while there are any.
async fn log_progress(m: Arc<Metrics>) {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = m.shares_total();
    loop {
        tick.tick().await;
        let now = m.shares_total();
        if now > last {
            let n = now - last;
            tracing::info!(
                shares = now,
                lag = m.lag_total(),
                jobs = m.jobs.get(),
                "validated {n} shares in the last {} s ({:.0}/s)",
                PROGRESS_EVERY.as_secs(),
                n as f64 / PROGRESS_EVERY.as_secs_f64()
            );
        }
        last = now;
    }
}
