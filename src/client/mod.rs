//! The client library of a stratum server: publish shares to the shares topic and get each
//! share's verdict back, from a reply route of the server's own (docs/kafka.md, "Verdict
//! routing").
//!
//! ```no_run
//! # async fn f(cfg: sharecheck::config::Config, share: sharecheck::wire::binary::ShareRecord) -> anyhow::Result<()> {
//! use sharecheck::client::{Client, ClientOptions};
//! use sharecheck::kafka::reply::Route;
//! let route = Route { topic: cfg.kafka.topics.replies.clone(), partition: Some(0) };
//! let client = Client::connect(&cfg.kafka, ClientOptions::new(route))?;
//! let verdict = client.submit(share).await?;
//! println!("{:?}", verdict.status);
//! # Ok(()) }
//! ```
//!
//! Shares travel in share batches, one per shares partition, gathered for up to `linger`
//! ([`batch`]), with a `reply_to` header. The client gives each share an id of its own: its
//! place in a table of `max_in_flight` slots made once ([`slots`]), so that a share in
//! flight costs no allocation beyond its record in the batch. The caller's id is
//! overwritten. The verdicts of the route are read by one thread, which hands each to the
//! share waiting for it; a verdict that nobody waits for (a repeat after a node's crash, or
//! one that came after its share timed out) is dropped and counted. Every route must have one
//! reader only: two clients on one route would each see half of the other's verdicts as
//! unknown.

pub mod batch;
pub mod slots;

use crate::config::KafkaConfig;
use crate::kafka::reply::Route;
use crate::kafka::send::key_of;
use crate::kafka::{producer_config, reader_config, ReaderContext};
use crate::model::Verdict;
use crate::wire::binary::{decode_verdicts, encode_job, ShareRecord};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How a client publishes and waits.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Where the node sends the verdicts of this client's shares.
    pub reply: Route,
    /// How long a share waits for its verdict. Default 5 s.
    pub timeout: Duration,
    /// Shares waiting for a verdict at once; `submit` waits for a place beyond that.
    /// Default 16 384 (the table of their places is made at once, about 200 bytes each).
    pub max_in_flight: usize,
    /// How long a share waits for company before its batch is produced. Default 1 ms.
    pub linger: Duration,
    /// Shares in one batch message at most (128 bytes each). Default 1024.
    pub max_batch: usize,
}

impl ClientOptions {
    pub fn new(reply: Route) -> ClientOptions {
        ClientOptions {
            reply,
            timeout: Duration::from_secs(5),
            max_in_flight: 16_384,
            linger: Duration::from_millis(1),
            max_batch: 1024,
        }
    }
}

/// Why a share got no verdict.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no verdict within {0:?}")]
    Timeout(Duration),
    #[error("the broker did not take the share: {0}")]
    Kafka(String),
    #[error("the client is closed")]
    Closed,
}

/// Counters of a client's life.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Verdicts read that no share waited for (repeats, late ones).
    pub unmatched: AtomicU64,
    /// Verdict messages on the route that could not be decoded.
    pub undecodable: AtomicU64,
}

/// A stratum server's connection to sharecheck.
pub struct Client {
    producer: FutureProducer,
    batcher: Arc<batch::Batcher>,
    jobs_topic: String,
    opts: ClientOptions,
    /// The shares waiting for their verdicts (`max_in_flight` places).
    waiting: Arc<slots::Slots>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub stats: Arc<ClientStats>,
}

impl Client {
    /// Connects to the brokers of `k` and starts reading the reply route from its current
    /// end (verdicts already there are for an earlier client). `submit` must then be called
    /// within a tokio runtime. The shares topic's partition count is read once, here.
    pub fn connect(k: &KafkaConfig, opts: ClientOptions) -> anyhow::Result<Client> {
        let producer: FutureProducer = producer_config(k, "sharecheck-client")
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create the share producer: {e}"))?;
        let consumer: BaseConsumer<ReaderContext> = reader_config(k, "sharecheck-client")
            .create_with_context(ReaderContext)
            .map_err(|e| anyhow::anyhow!("cannot create the verdict reader: {e}"))?;
        assign_from_end(&consumer, &opts.reply)?;
        let partitions = partition_count(&consumer, &k.topics.shares)?;
        let batcher = batch::Batcher::new(
            producer.clone(),
            k.topics.shares.clone(),
            partitions,
            opts.reply.header_value(),
            opts.linger,
            opts.max_batch,
        );
        let waiting = Arc::new(slots::Slots::new(opts.max_in_flight));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ClientStats::default());
        let reader = {
            let (waiting, stop, stats) = (waiting.clone(), stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("verdict-reader".into())
                .spawn(move || read_verdicts(consumer, &waiting, &stop, &stats))?
        };
        Ok(Client {
            producer,
            batcher,
            jobs_topic: k.topics.jobs.clone(),
            opts,
            waiting,
            stop,
            reader: Some(reader),
            stats,
        })
    }

    /// Publishes one share, keyed by its session (extranonce1) as the node expects, and
    /// waits for its verdict. The record's id is replaced by the client's own; the verdict
    /// carries that one.
    pub async fn submit(&self, mut share: ShareRecord) -> Result<Verdict, ClientError> {
        // Whatever happens next (a verdict, an error, a timeout, the caller dropping the
        // future), the slot is given back when `held` goes.
        let held = self.waiting.hold().await.ok_or(ClientError::Closed)?;
        share.id = held.id.to_le_bytes();
        let mut delivered = self.batcher.add(share, key_of(&share));
        let wait = async {
            let outcome = delivered
                .wait_for(Option::is_some)
                .await
                .map_err(|_| ClientError::Closed)?
                .clone();
            if let Some(Err(e)) = outcome {
                return Err(ClientError::Kafka(e));
            }
            Ok(held.verdict().await)
        };
        match tokio::time::timeout(self.opts.timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(self.opts.timeout)),
        }
    }

    /// Publishes a job to the jobs topic, keyed by its id, and waits for the broker.
    pub async fn publish_job(&self, job: &crate::model::Job) -> Result<(), ClientError> {
        let payload = encode_job(job);
        let rec = FutureRecord::to(&self.jobs_topic)
            .payload(&payload)
            .key(job.job_id.as_bytes());
        let delivery = self
            .producer
            .send_result(rec)
            .map_err(|(e, _)| ClientError::Kafka(e.to_string()))?;
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(ClientError::Kafka(e.to_string())),
            Err(_) => Err(ClientError::Closed),
        }
    }

    /// Shares waiting for their verdict now.
    pub fn in_flight(&self) -> usize {
        self.waiting.held()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Partitions of the shares topic.
fn partition_count(c: &BaseConsumer<ReaderContext>, topic: &str) -> anyhow::Result<i32> {
    Ok(crate::kafka::partitions_of(c, topic, Duration::from_secs(10))?.len() as i32)
}

/// Assigns the route's partition (or every partition of its topic) at its end offset now.
fn assign_from_end(c: &BaseConsumer<ReaderContext>, route: &Route) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(10);
    let parts: Vec<i32> = match route.partition {
        Some(p) => vec![p],
        None => {
            let md = c
                .fetch_metadata(Some(&route.topic), timeout)
                .map_err(|e| anyhow::anyhow!("metadata of {}: {e}", route.topic))?;
            let t = md.topics().first();
            let n = t.map_or(0, |t| t.partitions().len() as i32);
            anyhow::ensure!(n > 0, "reply topic {} does not exist", route.topic);
            (0..n).collect()
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in parts {
        let (_, high) = c.fetch_watermarks(&route.topic, p, timeout).map_err(|e| {
            anyhow::anyhow!(
                "reply route {}: {e} (does the topic and partition exist? `sharecheck \
                 topics create` makes kafka.topics.replies)",
                route.header_value()
            )
        })?;
        tpl.add_partition_offset(&route.topic, p, Offset::Offset(high))?;
    }
    c.assign(&tpl)
        .map_err(|e| anyhow::anyhow!("cannot assign {}: {e}", route.header_value()))
}

/// The reader thread: every verdict of the route to the share waiting for it.
fn read_verdicts(
    c: BaseConsumer<ReaderContext>,
    waiting: &slots::Slots,
    stop: &AtomicBool,
    stats: &ClientStats,
) {
    while !stop.load(Ordering::Relaxed) {
        let Some(r) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let Ok(m) = r else { continue };
        let Ok(verdicts) = decode_verdicts(m.payload().unwrap_or(&[])) else {
            stats.undecodable.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        for v in verdicts {
            if !waiting.deliver(v) {
                stats.unmatched.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
