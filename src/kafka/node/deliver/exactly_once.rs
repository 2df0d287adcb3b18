//! Exactly-once delivery: one transaction per partition per completed batch, holding the
//! partition's outputs and its next offset (see [`crate::kafka::txn`]).

use super::{completed, count_batch, count_shares, produce_blocking, Delivery};
use crate::kafka::node::clients::Shared;
use crate::kafka::node::gather::Work;
use crate::kafka::node::hash::{Hashed, Output, StatusCounts};
use crate::kafka::node::ownership::{Epoch, OwnershipEvent};
use crate::kafka::source_headers;
use crate::kafka::txn::{classify, TxnFailure, TXN_TIMEOUT};
use crate::metrics::Metrics;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

type TxWorkers = HashMap<i32, (std::sync::mpsc::Sender<TxJob>, std::thread::JoinHandle<()>)>;

/// One transaction worker thread per partition, started on first use.
pub struct ExactlyOnce {
    sh: Arc<Shared>,
    workers: TxWorkers,
}

impl ExactlyOnce {
    pub fn new(sh: Arc<Shared>) -> ExactlyOnce {
        ExactlyOnce {
            sh,
            workers: HashMap::new(),
        }
    }
}

impl Delivery for ExactlyOnce {
    async fn submit(&mut self, h: Hashed) {
        dispatch(&self.sh, h, &mut self.workers);
    }

    async fn finish(self) {
        let handles: Vec<_> = self.workers.into_values().map(|(_, h)| h).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for h in handles {
                let _ = h.join();
            }
        })
        .await;
    }
}

/// The output of one share message: its offset, key, headers and (topic, payload) messages.
struct TxMessage {
    offset: i64,
    key: Option<Vec<u8>>,
    headers: OwnedHeaders,
    out: Vec<Output>,
    counts: StatusCounts,
}

/// One partition's share of a hashed batch: written in one transaction.
struct TxJob {
    epoch: Epoch,
    messages: Vec<TxMessage>,
    /// The batch (its in-flight permit) is released when its last job is done.
    _batch: Arc<BatchHold>,
}

/// Holds a batch until every partition's transaction of it ended.
struct BatchHold {
    work: Work,
    metrics: Arc<Metrics>,
}

impl Drop for BatchHold {
    fn drop(&mut self) {
        self.metrics
            .batch_latency
            .observe(self.work.fetched.elapsed().as_secs_f64());
    }
}

/// Splits a hashed batch by partition and hands each part to the partition's transaction
/// worker (started on first use). Batches arrive in fetch order and each worker takes its
/// jobs in order, so a partition's transactions commit in offset order.
fn dispatch(sh: &Arc<Shared>, h: Hashed, workers: &mut TxWorkers) {
    let Hashed { work, out: encoded } = h;
    let topics = &sh.cfg.kafka.topics;
    let mut parts: Vec<(Epoch, Vec<TxMessage>)> = Vec::new();
    for (item, enc) in work.items.iter().zip(encoded) {
        // A dead letter is cut to fit what librdkafka takes (a message it refuses would
        // abort every transaction of the partition).
        let msg = match &item.dead {
            Some(d) => TxMessage {
                offset: item.offset,
                key: d.key.clone(),
                headers: d.headers(),
                out: vec![Output::to(&topics.dead_letter, d.payload.clone())],
                counts: StatusCounts::default(),
            },
            None => TxMessage {
                offset: item.offset,
                key: item.key.clone(),
                headers: source_headers(&topics.shares, item.epoch.partition, item.offset),
                counts: enc.counts,
                out: enc.messages(topics, item.reply.as_ref()),
            },
        };
        match parts.iter_mut().find(|x| x.0 == item.epoch) {
            Some(x) => x.1.push(msg),
            None => parts.push((item.epoch, vec![msg])),
        }
    }
    count_batch(&sh.metrics, work.shares);
    let hold = Arc::new(BatchHold {
        work,
        metrics: sh.metrics.clone(),
    });
    for (epoch, messages) in parts {
        let partition = epoch.partition;
        let job = TxJob {
            epoch,
            messages,
            _batch: hold.clone(),
        };
        let job = match workers.get(&partition) {
            Some((tx, _)) => match tx.send(job) {
                Ok(()) => continue,
                Err(e) => e.0,
            },
            None => job,
        };
        // No worker yet (or it stopped): start one.
        let (tx, rx) = std::sync::mpsc::channel();
        let _ = tx.send(job);
        let s = sh.clone();
        match std::thread::Builder::new()
            .name(format!("txn-{partition}"))
            .spawn(move || transaction_worker(&s, partition, rx))
        {
            Ok(h) => {
                workers.insert(partition, (tx, h));
            }
            Err(e) => tracing::error!(partition, "cannot start a transaction worker: {e}"),
        }
    }
}

/// Writes one partition's jobs, one transaction each, in order.
///
/// After a failed transaction the worker aborts it and asks for the partition to be rewound
/// to the last committed offset; jobs of the aborted epoch that are already on their way
/// are dropped. A fenced producer stops the partition on this node.
fn transaction_worker(sh: &Arc<Shared>, partition: i32, rx: std::sync::mpsc::Receiver<TxJob>) {
    let Some(tx) = sh.tx.clone() else { return };
    // The epoch whose transaction failed: its remaining jobs are dropped.
    let mut dead: Option<Epoch> = None;
    // (epoch, next offset to read after the last commit): where to rewind to.
    let mut committed: Option<(Epoch, i64)> = None;
    for job in rx {
        if sh.abort.load(Ordering::Relaxed) {
            // Shutdown ran out of time: an open transaction is aborted by the next owner.
            return;
        }
        let epoch = job.epoch;
        if !sh.ownership.is_current(epoch) || dead == Some(epoch) || job.messages.is_empty() {
            continue;
        }
        let first = job.messages[0].offset;
        let rewind_to = match committed {
            Some((ce, o)) if ce == epoch => o,
            _ => first,
        };
        let rewind = OwnershipEvent::Rewind {
            epoch,
            offset: rewind_to,
        };
        let producer = match tx.get_or_gain(partition, &sh.abort) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(partition, "{e:#}; the partition is validated again");
                dead = Some(epoch);
                let _ = sh.events.send(rewind);
                continue;
            }
        };
        match write_transaction(sh, &producer, &job) {
            Ok(()) => {
                let last = job.messages[job.messages.len() - 1].offset;
                committed = Some((epoch, last + 1));
                let mut done = Vec::with_capacity(job.messages.len());
                for m in &job.messages {
                    count_shares(&sh.metrics, &m.counts);
                    done.push((epoch, m.offset));
                }
                completed(sh, &done);
            }
            Err(e) if classify(&e) == TxnFailure::Fatal => {
                tracing::error!(
                    partition,
                    "transactional producer fenced or failed ({e}); another node owns the \
                     partition now, it is stopped here"
                );
                dead = Some(epoch);
                tx.forget(partition, &producer);
                let _ = sh.events.send(OwnershipEvent::Fenced(epoch));
            }
            Err(e) => {
                tracing::warn!(
                    partition,
                    "transaction aborted ({e}); validating again from offset {rewind_to}"
                );
                sh.ownership
                    .note_error(partition, format!("transaction aborted: {e}"));
                sh.metrics.delivery_retries.inc();
                if let Err(ae) = producer.abort_transaction(TXN_TIMEOUT) {
                    tracing::warn!(partition, "abort_transaction: {ae}");
                    if classify(&ae) == TxnFailure::Fatal {
                        tx.forget(partition, &producer);
                    }
                }
                dead = Some(epoch);
                let _ = sh.events.send(rewind);
            }
        }
    }
}

/// One transaction: the job's messages and the partition's next offset, committed together.
fn write_transaction(
    sh: &Shared,
    producer: &FutureProducer,
    job: &TxJob,
) -> Result<(), KafkaError> {
    producer.begin_transaction()?;
    for m in &job.messages {
        for o in &m.out {
            // The delivery is checked by commit_transaction, which fails if any message of
            // the transaction failed.
            let headers = o.headers(m.headers.clone());
            let to = (o.topic.as_str(), o.partition);
            produce_blocking(producer, to, m.key.as_deref(), &o.payload, headers)?;
        }
    }
    let last = job.messages[job.messages.len() - 1].offset;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(
        &sh.cfg.kafka.topics.shares,
        job.epoch.partition,
        Offset::Offset(last + 1),
    )?;
    // Only missing on a consumer without group.id, which the node never creates.
    let group = sh
        .consumer
        .group_metadata()
        .ok_or(KafkaError::MessageProduction(RDKafkaErrorCode::State))?;
    producer.send_offsets_to_transaction(&tpl, &group, TXN_TIMEOUT)?;
    // A commit that timed out may have gone through: it is retried, never aborted.
    loop {
        match producer.commit_transaction(TXN_TIMEOUT) {
            Ok(()) => return Ok(()),
            Err(e) if classify(&e) == TxnFailure::Retry && !sh.abort.load(Ordering::Relaxed) => {
                tracing::warn!(
                    partition = job.epoch.partition,
                    "commit_transaction: {e}; retrying"
                );
            }
            Err(e) => return Err(e),
        }
    }
}
