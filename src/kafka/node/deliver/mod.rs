//! Delivery: the outputs of hashed batches (verdicts, blocks, dead letters) to the broker,
//! and their offsets completed once the broker has them. One [`Delivery`] per delivery
//! mode: [`at_least_once`] stores an offset once its outputs are acknowledged,
//! [`exactly_once`] writes a partition's outputs and its next offset in one transaction.

pub mod at_least_once;
pub mod dead_letter;
pub mod exactly_once;

use super::clients::Shared;
use super::hash::{Hashed, StatusCounts};
use super::ownership::Epoch;
use crate::metrics::Metrics;
use crate::model::Status;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A delivery mode.
pub trait Delivery: Send + 'static {
    /// Takes a hashed batch. Returns once the batch's in-flight permit may go (its outputs
    /// are with the producer); the acknowledgement may come later.
    fn submit(&mut self, h: Hashed) -> impl Future<Output = ()> + Send;

    /// Waits until everything submitted has ended: acknowledged, or given up once shutdown
    /// ran out of time.
    fn finish(self) -> impl Future<Output = ()> + Send;
}

/// The delivery stage: every hashed batch of every lane, until the lanes stop.
pub fn start(
    sh: &Arc<Shared>,
    hashed: tokio::sync::mpsc::UnboundedReceiver<Hashed>,
) -> tokio::task::JoinHandle<()> {
    match sh.tx {
        Some(_) => tokio::spawn(run(exactly_once::ExactlyOnce::new(sh.clone()), hashed)),
        None => tokio::spawn(run(at_least_once::AtLeastOnce::new(sh.clone()), hashed)),
    }
}

async fn run<D: Delivery>(mut d: D, mut hashed: tokio::sync::mpsc::UnboundedReceiver<Hashed>) {
    while let Some(h) = hashed.recv().await {
        d.submit(h).await;
    }
    d.finish().await;
}

/// Enqueues a message, waiting (without reordering) while librdkafka's queue is full.
pub async fn produce(
    producer: &FutureProducer,
    topic: (&str, Option<i32>),
    key: Option<&[u8]>,
    payload: &[u8],
    headers: OwnedHeaders,
) -> Result<DeliveryFuture, KafkaError> {
    let mut rec = record(topic, key, payload, headers);
    loop {
        match try_send(producer, rec)? {
            Sent::Queued(f) => return Ok(f),
            Sent::Full(r) => rec = r,
        }
        tokio::time::sleep(QUEUE_FULL_WAIT).await;
    }
}

/// [`produce`] for threads outside the async runtime (the transaction workers, the jobs
/// reader).
pub fn produce_blocking(
    producer: &FutureProducer,
    topic: (&str, Option<i32>),
    key: Option<&[u8]>,
    payload: &[u8],
    headers: OwnedHeaders,
) -> Result<DeliveryFuture, KafkaError> {
    let mut rec = record(topic, key, payload, headers);
    loop {
        match try_send(producer, rec)? {
            Sent::Queued(f) => return Ok(f),
            Sent::Full(r) => rec = r,
        }
        std::thread::sleep(QUEUE_FULL_WAIT);
    }
}

/// How long a producer waits for room when librdkafka's queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(5);

type Record<'a> = FutureRecord<'a, [u8], [u8]>;

/// A record to `topic`: (name, partition; None places it by the key).
fn record<'a>(
    (topic, partition): (&'a str, Option<i32>),
    key: Option<&'a [u8]>,
    payload: &'a [u8],
    headers: OwnedHeaders,
) -> Record<'a> {
    let mut rec = FutureRecord::to(topic).payload(payload).headers(headers);
    if let Some(p) = partition {
        rec = rec.partition(p);
    }
    match key {
        Some(k) => rec.key(k),
        None => rec,
    }
}

enum Sent<'a> {
    Queued(DeliveryFuture),
    /// librdkafka's queue is full: the record comes back, to be sent again.
    Full(Record<'a>),
}

fn try_send<'a>(producer: &FutureProducer, rec: Record<'a>) -> Result<Sent<'a>, KafkaError> {
    match producer.send_result(rec) {
        Ok(f) => Ok(Sent::Queued(f)),
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => Ok(Sent::Full(r)),
        Err((e, _)) => Err(e),
    }
}

/// Counts delivered shares by status.
pub fn count_shares(metrics: &Metrics, counts: &StatusCounts) {
    for (s, &n) in Status::ALL.iter().zip(counts) {
        if n > 0 {
            metrics.shares.with_label_values(&[s.as_str()]).inc_by(n);
        }
    }
}

/// Counts a batch handed to the producer.
pub fn count_batch(metrics: &Metrics, shares: usize) {
    metrics.batches.inc();
    metrics.batch_shares.observe(shares as f64);
}

/// Share messages whose outputs the broker has: their offsets completed, and the
/// committable offsets that moved stored for librdkafka's next commit (in the order they
/// moved: see [`Ownership::complete_and_store`](super::ownership::Ownership::complete_and_store)).
pub fn completed(sh: &Shared, done: &[(Epoch, i64)]) {
    sh.ownership.complete_and_store(done, |moved| {
        let mut tpl = TopicPartitionList::with_capacity(moved.len());
        let topic = &sh.cfg.kafka.topics.shares;
        for (p, next) in moved {
            if tpl
                .add_partition_offset(topic, *p, Offset::Offset(*next))
                .is_err()
            {
                return;
            }
        }
        if let Err(e) = sh.consumer.store_offsets(&tpl) {
            // A partition was revoked meanwhile; its new owner re-reads it.
            tracing::debug!("offsets {moved:?} not stored: {e}");
        }
    });
}
