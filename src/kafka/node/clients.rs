//! The node's Kafka clients, made in one place, and what every stage shares.

use super::ownership::{Ownership, OwnershipEvent};
use crate::config::{Config, KafkaConfig};
use crate::kafka::reply::Routes;
use crate::kafka::txn::TxRegistry;
use crate::kafka::{log_librdkafka, producer_config, reader_config, ReaderContext};
use crate::metrics::Metrics;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub type ShareConsumer = StreamConsumer<NodeContext>;

/// Everything the stages share.
pub struct Shared {
    pub cfg: Config,
    pub consumer: ShareConsumer,
    pub producer: FutureProducer,
    pub ownership: Arc<Ownership>,
    pub metrics: Arc<Metrics>,
    /// Raised when shutdown has run out of time: stages stop retrying and waiting.
    pub abort: AtomicBool,
    /// Exactly-once delivery: the partitions' transactional producers.
    pub tx: Option<Arc<TxRegistry>>,
    /// Ownership events of the transaction workers, carried out by the gatherer's loop
    /// (which owns the fetch position).
    pub events: tokio::sync::mpsc::UnboundedSender<OwnershipEvent>,
    /// at_least_once: permits for batches produced and not yet acknowledged.
    pub unacked: Arc<Semaphore>,
    /// The reply routes share messages may name.
    pub routes: Routes,
}

impl Shared {
    /// The clients of a node: the share consumer (a group member in kafka mode, assigned by
    /// hand in zookeeper mode), the verdict producer and, with exactly-once delivery, the
    /// registry of transactional producers.
    pub fn connect(
        cfg: &Config,
        ownership: Arc<Ownership>,
        metrics: Arc<Metrics>,
        events: tokio::sync::mpsc::UnboundedSender<OwnershipEvent>,
    ) -> anyhow::Result<Shared> {
        let k = &cfg.kafka;
        let tx = k.is_exactly_once().then(|| Arc::new(TxRegistry::new(k)));
        let consumer = share_consumer(k, &ownership, &metrics, &tx)?;
        let producer: FutureProducer = producer_config(k, "sharecheck-node")
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create the verdict producer: {e}"))?;
        let lanes = cfg.backend.lanes();
        Ok(Shared {
            cfg: cfg.clone(),
            consumer,
            producer,
            ownership,
            metrics,
            abort: AtomicBool::new(false),
            tx,
            events,
            unacked: Arc::new(Semaphore::new(k.max_unacked_batches.max(1) * lanes)),
            routes: Routes::new(&k.topics.replies),
        })
    }
}

/// The share consumer: offsets are stored by hand (once acknowledged) and committed by
/// librdkafka, or, with exactly-once delivery, by the transactions only.
fn share_consumer(
    k: &KafkaConfig,
    ownership: &Arc<Ownership>,
    metrics: &Arc<Metrics>,
    tx: &Option<Arc<TxRegistry>>,
) -> anyhow::Result<ShareConsumer> {
    let mut cc = reader_config(k, "sharecheck-node");
    cc.set("group.id", &k.group_id)
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000")
        // Kafka mode: a rebalance moves only the partitions that change owner, and the
        // others go on validating (the eager default, range, stops every member's
        // partitions on each join or leave).
        .set("partition.assignment.strategy", "cooperative-sticky");
    for (key, v) in &k.consumer {
        cc.set(key, v);
    }
    cc.set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false");
    if tx.is_some() {
        // read_committed makes the offset fetch of a gained partition wait for a
        // transaction that still holds offsets.
        cc.set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
    }
    cc.create_with_context(NodeContext {
        ownership: ownership.clone(),
        metrics: metrics.clone(),
        topic: k.topics.shares.clone(),
        tx: tx.clone(),
    })
    .map_err(|e| anyhow::anyhow!("cannot create the share consumer: {e}"))
}

/// A reader outside any group (the jobs reader and its end-offset client); `what` names it
/// in errors.
pub fn jobs_client(
    k: &KafkaConfig,
    client_id: &str,
    what: &str,
) -> anyhow::Result<BaseConsumer<ReaderContext>> {
    reader_config(k, client_id)
        .create_with_context(ReaderContext)
        .map_err(|e| anyhow::anyhow!("cannot create the {what}: {e}"))
}

/// The share consumer's context: rebalances start and stop holdings, statistics give lag.
pub struct NodeContext {
    ownership: Arc<Ownership>,
    metrics: Arc<Metrics>,
    topic: String,
    tx: Option<Arc<TxRegistry>>,
}

impl ClientContext for NodeContext {
    fn stats(&self, s: Statistics) {
        if let Some(t) = s.topics.get(&self.topic) {
            for (p, st) in &t.partitions {
                // Only partitions held: librdkafka goes on reporting ones given up. A held
                // partition that is paused or stuck keeps its lag (it is what grows then).
                if *p >= 0 && st.consumer_lag >= 0 && self.ownership.is_held(*p) {
                    self.metrics.set_lag(&self.topic, *p, st.consumer_lag);
                }
            }
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_librdkafka(level, fac, msg);
    }
}

impl ConsumerContext for NodeContext {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        match r {
            Rebalance::Assign(tpl) => {
                for e in tpl.elements() {
                    self.ownership.start(e.partition());
                    if let Some(tx) = &self.tx {
                        // Before the assignment reads the committed offsets: fence the
                        // previous owner and end its open transaction, so that the offsets
                        // read are final.
                        if let Err(err) = tx.gain(e.partition(), &AtomicBool::new(true)) {
                            tracing::warn!(
                                partition = e.partition(),
                                "{err:#}; retried before the first transaction"
                            );
                        }
                    }
                }
            }
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                for p in &parts {
                    self.ownership.stop(*p);
                    self.metrics.forget_partition(&self.topic, *p);
                }
                tracing::info!(?parts, "partitions revoked");
            }
            Rebalance::Error(_) => {}
        }
    }

    fn post_rebalance(&self, c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        match r {
            Rebalance::Assign(tpl) => {
                // A pause left by an earlier holding (a fenced producer) would outlive the
                // assignment, which clears only librdkafka's own pause flag.
                if let Err(e) = c.resume(tpl) {
                    tracing::warn!("cannot resume the assigned partitions: {e}");
                }
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(?parts, "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!("rebalance error: {e}"),
            Rebalance::Revoke(_) => {}
        }
    }
}
