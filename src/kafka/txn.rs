//! Exactly-once delivery (`kafka.delivery = "exactly_once"`): the transactional producers.
//!
//! One transactional producer per owned share partition, with `transactional.id`
//! `<group_id>-<shares topic>-<partition>`. The verdicts (and block candidates, and dead
//! letters) of a partition's share messages and the partition's next offset are written in
//! one transaction per completed batch. A node that gains a partition initialises the
//! partition's producer *before* it reads the committed offset: `init_transactions` aborts
//! whatever transaction the previous owner left open and fences its producer, so a zombie
//! owner's later commit fails and it stops the partition.
//!
//! Why per partition and not one producer per node (KIP-447): in zookeeper mode partitions
//! are assigned by hand, there is no group generation, and the consumer group metadata cannot
//! fence anybody; only a transactional id that belongs to the partition can. Per-partition
//! ids work the same way in kafka mode (the group metadata is passed as well, so KIP-447's
//! generation check applies on top), so both modes share one design. The cost is one
//! producer (a connection set and a thread) per owned partition and one `init_transactions`
//! round trip when a partition is gained.

use super::producer_config;
use crate::config::KafkaConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one transactional call may take before it counts as failed.
pub const TXN_TIMEOUT: Duration = Duration::from_secs(10);

/// The transactional id of a share partition.
pub fn transactional_id(k: &KafkaConfig, partition: i32) -> String {
    format!("{}-{}-{}", k.group_id, k.topics.shares, partition)
}

/// How a transactional call failed.
#[derive(Debug, PartialEq, Eq)]
pub enum TxnFailure {
    /// The producer is fenced or otherwise unusable (another node owns the partition now).
    Fatal,
    /// The transaction must be aborted; the partition's batches are validated again.
    Abort,
    /// A temporary failure (timeout, broker away): the same call may be made again.
    Retry,
}

/// Classifies an error of a transactional call.
pub fn classify(e: &KafkaError) -> TxnFailure {
    match e {
        KafkaError::Transaction(t) if t.is_fatal() => TxnFailure::Fatal,
        KafkaError::Transaction(t) if t.txn_requires_abort() => TxnFailure::Abort,
        KafkaError::Transaction(t) if t.is_retriable() => TxnFailure::Retry,
        _ => TxnFailure::Abort,
    }
}

/// The transactional producers of the partitions this node owns.
pub struct TxRegistry {
    kafka: KafkaConfig,
    producers: Mutex<HashMap<i32, Arc<FutureProducer>>>,
}

impl TxRegistry {
    pub fn new(kafka: &KafkaConfig) -> TxRegistry {
        TxRegistry {
            kafka: kafka.clone(),
            producers: Mutex::new(HashMap::new()),
        }
    }

    fn create(&self, partition: i32) -> anyhow::Result<FutureProducer> {
        let mut c = producer_config(&self.kafka, &format!("sharecheck-node-p{partition}"));
        // An open transaction holds back read_committed readers of the verdict partitions
        // it wrote to until it ends; a crashed owner's is aborted by the next owner's
        // init_transactions, and this bounds it when nobody takes the partition over.
        if !self.kafka.producer.contains_key("transaction.timeout.ms") {
            c.set("transaction.timeout.ms", "30000");
        }
        c.set("transactional.id", transactional_id(&self.kafka, partition));
        c.create()
            .map_err(|e| anyhow::anyhow!("cannot create a transactional producer: {e}"))
    }

    /// The partition was gained: a fresh producer whose `init_transactions` fences every
    /// earlier producer of the partition (aborting its open transaction). Blocks; retries
    /// temporary failures until `abort` is raised.
    pub fn gain(&self, partition: i32, abort: &AtomicBool) -> anyhow::Result<Arc<FutureProducer>> {
        let p = self.create(partition)?;
        loop {
            match p.init_transactions(TXN_TIMEOUT) {
                Ok(()) => break,
                Err(e) if classify(&e) == TxnFailure::Retry && !abort.load(Ordering::Relaxed) => {
                    tracing::warn!(partition, "init_transactions: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => anyhow::bail!("init_transactions for partition {partition}: {e}"),
            }
        }
        let p = Arc::new(p);
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(partition, p.clone());
        tracing::info!(
            partition,
            transactional_id = %transactional_id(&self.kafka, partition),
            "transactional producer ready"
        );
        Ok(p)
    }

    /// The partition's producer, initialised now if there is none (its creation when the
    /// partition was gained failed).
    pub fn get_or_gain(
        &self,
        partition: i32,
        abort: &AtomicBool,
    ) -> anyhow::Result<Arc<FutureProducer>> {
        let have = self
            .producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&partition)
            .cloned();
        match have {
            Some(p) => Ok(p),
            None => self.gain(partition, abort),
        }
    }

    /// Drops the partition's producer if it is still `p` (fenced or failed).
    pub fn forget(&self, partition: i32, p: &Arc<FutureProducer>) {
        let mut m = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        if m.get(&partition).is_some_and(|x| Arc::ptr_eq(x, p)) {
            m.remove(&partition);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactional_ids_name_group_topic_and_partition() {
        let k = KafkaConfig::default();
        assert_eq!(transactional_id(&k, 3), "sharecheck-sharecheck.shares-3");
    }

    #[test]
    fn non_transaction_errors_abort() {
        assert_eq!(
            classify(&KafkaError::Canceled),
            TxnFailure::Abort,
            "anything unknown aborts the transaction"
        );
    }
}
