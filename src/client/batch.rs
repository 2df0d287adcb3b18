//! The client's share batches: shares of one shares partition gathered for up to a linger
//! time (or a full batch) into one share batch message, so that the broker and the node
//! handle one message per batch, not per share.
//!
//! A share's partition is the one librdkafka's default partitioner gives its key (CRC-32
//! of extranonce1 modulo the partition count, as `sharecheck send` places it), so a session
//! stays on one partition and the node's per-partition duplicate sets see all of its
//! shares.

use crate::kafka::reply::H_REPLY_TO;
use crate::wire::binary::{encode_shares, ShareRecord};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// A batch's delivery: None until the broker answered, then its outcome.
pub type Outcome = watch::Receiver<Option<Result<(), String>>>;

pub use crate::kafka::send::partition_of;

struct Open {
    records: Vec<ShareRecord>,
    /// The first share's key: the message's key (its partition is given explicitly).
    key: Vec<u8>,
    outcome: watch::Sender<Option<Result<(), String>>>,
    /// Tells a linger timer whether the batch it was started for is still the open one.
    generation: u64,
}

impl Open {
    fn new() -> Open {
        Open {
            records: Vec::new(),
            key: Vec::new(),
            outcome: watch::channel(None).0,
            generation: 0,
        }
    }

    /// The batch to produce, leaving an empty one open.
    fn take(&mut self) -> Sealed {
        let (tx, _) = watch::channel(None);
        Sealed {
            records: std::mem::take(&mut self.records),
            key: std::mem::take(&mut self.key),
            outcome: std::mem::replace(&mut self.outcome, tx),
        }
    }
}

struct Sealed {
    records: Vec<ShareRecord>,
    key: Vec<u8>,
    outcome: watch::Sender<Option<Result<(), String>>>,
}

/// The open batches, one per shares partition.
pub struct Batcher {
    producer: FutureProducer,
    topic: String,
    reply_to: String,
    parts: Vec<Mutex<Open>>,
    linger: Duration,
    max_records: usize,
}

impl Batcher {
    pub fn new(
        producer: FutureProducer,
        topic: String,
        partitions: i32,
        reply_to: String,
        linger: Duration,
        max_records: usize,
    ) -> Arc<Batcher> {
        Arc::new(Batcher {
            producer,
            topic,
            reply_to,
            parts: (0..partitions.max(1))
                .map(|_| Mutex::new(Open::new()))
                .collect(),
            linger,
            max_records: max_records.max(1),
        })
    }

    /// Adds a share to its partition's batch; the batch's outcome. Must be called within a
    /// tokio runtime (the batch is produced by a task).
    pub fn add(self: &Arc<Self>, share: ShareRecord, key: &[u8]) -> Outcome {
        let p = partition_of(key, self.parts.len() as i32);
        let (rx, timer, full) = {
            let mut open = self.parts[p as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let timer = open.records.is_empty().then(|| {
                open.generation += 1;
                open.key = key.to_vec();
                open.generation
            });
            open.records.push(share);
            let rx = open.outcome.subscribe();
            let full = (open.records.len() >= self.max_records).then(|| open.take());
            (rx, timer, full)
        };
        if let Some(sealed) = full {
            tokio::spawn(self.clone().produce(p, sealed));
        } else if let Some(generation) = timer {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(me.linger).await;
                let sealed = {
                    let mut open = me.parts[p as usize]
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    (open.generation == generation && !open.records.is_empty()).then(|| open.take())
                };
                if let Some(s) = sealed {
                    me.produce(p, s).await;
                }
            });
        }
        rx
    }

    /// Produces a batch to its partition and tells its shares how the broker answered.
    async fn produce(self: Arc<Self>, partition: i32, s: Sealed) {
        let payload = encode_shares(&s.records);
        let r = loop {
            let headers = OwnedHeaders::new().insert(Header {
                key: H_REPLY_TO,
                value: Some(self.reply_to.as_bytes()),
            });
            let rec = FutureRecord::to(&self.topic)
                .partition(partition)
                .key(&s.key)
                .payload(&payload)
                .headers(headers);
            match self.producer.send_result(rec) {
                Ok(f) => {
                    break match f.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((e, _))) => Err(e.to_string()),
                        Err(_) => Err("the producer was closed".to_string()),
                    }
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Err((e, _)) => break Err(e.to_string()),
            }
        };
        let _ = s.outcome.send(Some(r));
    }
}
