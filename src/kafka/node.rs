//! `sharecheck run`: the validator node.
//!
//! ```text
//!  shares consumer ──► gatherer ──► prepare thread ──► hash thread ──► producer stage
//!  (group member)     (max_shares     (jobs caught up,    (backend)      (verdicts, blocks;
//!                      or max_wait)    checks 1–6)                         offsets stored in
//!  jobs reader ──► job log ─────────────┘                                  order once acked)
//! ```
//!
//! At most `backend.inflight` batches are between the gatherer and the broker's
//! acknowledgement; when the limit is reached the gatherer pauses its partitions. An offset
//! is stored only when every verdict (and block) message of its share message is
//! acknowledged, in offset order per partition ([`super::offsets`]); librdkafka commits the
//! stored offsets periodically and the node commits them once more at shutdown.

use super::offsets::OffsetTracker;
use super::txn::{classify, TxRegistry, TxnFailure, TXN_TIMEOUT};
use super::{
    now_ms, partitions_of, producer_config, reader_config, source_headers, ReaderContext, H_ERROR,
};
use crate::backend::Backend;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::{Batch, JobCtx, Status, ValidationConfig, Validator};
use crate::sha256::State;
use crate::wire::binary::{decode_job, decode_shares, encode_verdicts, ShareRecord, VerdictWriter};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// How long shutdown may take from the signal to the final commit; the process must be gone
/// within 10 s, and closing the clients takes the rest.
const DRAIN_LIMIT: Duration = Duration::from_secs(7);
/// From the signal, when the process exits even if closing the Kafka clients has not
/// finished. Closing leaves the consumer group and flushes the producers; with the brokers
/// away librdkafka keeps trying well past 10 s, and by then nothing depends on it: the
/// offsets are committed, or (final commit failed) the uncommitted tail is validated again
/// by the partition's next owner.
pub const EXIT_LIMIT: Duration = Duration::from_secs(9);
/// How long the gatherer waits for an in-flight slot before it pauses the partitions.
const PAUSE_AFTER: Duration = Duration::from_secs(2);
/// How often a node that is validating logs its progress (an idle node stays quiet).
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// at_least_once: undecodable share messages on their way to the dead-letter topic and not
/// yet acknowledged. At the limit the gatherer waits, as it does for in-flight batches, so a
/// flood of bad messages that the broker does not take (the dead-letter topic missing, a
/// payload over its size limit) holds memory to this many payloads instead of growing.
const MAX_DEAD_LETTERS_UNACKED: usize = 64;

/// What the node did, reported when it stops.
#[derive(Debug, Default, Clone)]
pub struct NodeSummary {
    pub shares: u64,
    pub messages: u64,
    pub dead_letters: u64,
    pub committed: Vec<(i32, i64)>,
}

// ---------------------------------------------------------------------------------------
// Jobs: one reader of the whole jobs topic, shared by all partitions.

struct JobState {
    /// Absolute index of `jobs[0]`: validators remember how far they applied the log.
    base: u64,
    /// Jobs with their publish timestamps, in topic order; trimmed after job_ttl_s.
    /// Built once here and shared by every partition's validator.
    jobs: VecDeque<(Arc<JobCtx>, i64)>,
    /// Next offset to read, per jobs partition.
    position: HashMap<i32, i64>,
}

struct JobLog {
    state: Mutex<JobState>,
    changed: Condvar,
    consumer: BaseConsumer<ReaderContext>,
    /// A second client that only asks for end offsets. The broker answers the requests of one
    /// connection in order, so asking through the reader's own connection would wait behind
    /// its long-polling fetch (up to fetch.wait.max.ms, 500 ms by default).
    ends: BaseConsumer<ReaderContext>,
    topic: String,
    partitions: Vec<i32>,
    dead: JobDeadLetters,
    /// End-offset queries asked for and answered (see [`JobLog::request_ends`]).
    ends_state: Mutex<EndsState>,
    ends_changed: Condvar,
}

/// The end-offset queries of the jobs topic. A batch asks for one when it is dispatched and
/// waits, in the prepare stage, for the answer of a query that *started* after it asked; one
/// query serves every batch that asked before it started. So the round trip overlaps with
/// the preparation of the batch before, and batches are not serialised on it.
#[derive(Default)]
struct EndsState {
    /// Tickets handed out: the ticket of the latest request.
    requested: u64,
    /// The ticket the query under way (or the last one) started with.
    started: u64,
    /// The ticket the last answered query started with, and its end offsets.
    answered: u64,
    highs: Vec<(i32, i64)>,
}

/// Where the jobs reader puts job messages it cannot use.
struct JobDeadLetters {
    producer: FutureProducer,
    topic: String,
    runtime: tokio::runtime::Handle,
}

impl JobDeadLetters {
    /// Produces the message byte for byte to the dead-letter topic, with its source and the
    /// reason in headers, and logs a failed delivery. The jobs reader does not wait: it has
    /// no offsets to store, and every node reads the whole jobs topic, so each node puts its
    /// own copy there (readers drop repeats by source topic, partition and offset).
    fn send(&self, m: &BorrowedMessage<'_>, error: &str, metrics: &Metrics) {
        metrics.dead_letters.inc();
        let headers = source_headers(m.topic(), m.partition(), m.offset()).insert(Header {
            key: H_ERROR,
            value: Some(error),
        });
        let mut rec = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .payload(m.payload().unwrap_or(&[]))
            .headers(headers);
        if let Some(k) = m.key() {
            rec = rec.key(k);
        }
        loop {
            match self.producer.send_result(rec) {
                Ok(f) => {
                    let (p, o) = (m.partition(), m.offset());
                    self.runtime.spawn(async move {
                        if !matches!(f.await, Ok(Ok(_))) {
                            tracing::warn!(
                                partition = p,
                                offset = o,
                                "bad job message not delivered to the dead-letter topic"
                            );
                        }
                    });
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    tracing::warn!("cannot produce to {}: {e}", self.topic);
                    return;
                }
            }
        }
    }
}

impl JobLog {
    /// Reads the jobs topic until `stop`.
    fn read(&self, stop: &AtomicBool, ttl_ms: i64, metrics: &Metrics) {
        let mut last_err = Instant::now() - Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) {
            let Some(r) = self.consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            match r {
                Ok(m) => {
                    let ts = m.timestamp().to_millis().unwrap_or_else(now_ms);
                    let job = decode_job(m.payload().unwrap_or(&[]))
                        .map_err(|e| e.to_string())
                        .and_then(|j| {
                            let id = j.job_id.clone();
                            JobCtx::new(j)
                                .map(Arc::new)
                                .map_err(|e| format!("job {id:?} unusable: {e}"))
                        });
                    let job = match job {
                        Ok(j) => Some(j),
                        Err(e) => {
                            tracing::warn!(
                                partition = m.partition(),
                                offset = m.offset(),
                                "bad job message to the dead-letter topic: {e}"
                            );
                            self.dead.send(&m, &e, metrics);
                            None
                        }
                    };
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(j) = job {
                        st.jobs.push_back((j, ts));
                        // Jobs older than the ttl are expired in every validator; new
                        // validators need not see them.
                        let newest = st.jobs.back().map_or(ts, |x| x.1);
                        while st.jobs.front().is_some_and(|f| f.1 + ttl_ms < newest) {
                            st.jobs.pop_front();
                            st.base += 1;
                        }
                        metrics.jobs.set(st.jobs.len() as i64);
                    }
                    st.position.insert(m.partition(), m.offset() + 1);
                    self.changed.notify_all();
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    // At the end: whatever the offsets (compaction or transaction markers can
                    // leave gaps), the reader is caught up to the current position.
                    if let Ok(pos) = self.consumer.position() {
                        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                        for e in pos.elements_for_topic(&self.topic) {
                            if e.partition() == p {
                                if let Offset::Offset(o) = e.offset() {
                                    let cur = st.position.entry(p).or_insert(0);
                                    *cur = (*cur).max(o);
                                }
                            }
                        }
                        self.changed.notify_all();
                    }
                }
                Err(e) => {
                    // While the broker is away this repeats every poll: one line per 5 s.
                    if last_err.elapsed() > Duration::from_secs(5) {
                        tracing::warn!("jobs reader: {e}");
                        last_err = Instant::now();
                    }
                }
            }
        }
    }

    /// Asks for the jobs topic's end offsets as they are from now on; returns the ticket to
    /// wait on with [`JobLog::catch_up`].
    fn request_ends(&self) -> u64 {
        let mut e = self.ends_state.lock().unwrap_or_else(|e| e.into_inner());
        e.requested += 1;
        self.ends_changed.notify_all();
        e.requested
    }

    /// The end-offset thread: whenever a ticket is newer than the last query, queries the
    /// end offsets of every jobs partition and publishes them. Until `stop`.
    fn query_ends(&self, stop: &AtomicBool) {
        let mut warned = false;
        while !stop.load(Ordering::Relaxed) {
            let ticket = {
                let mut e = self.ends_state.lock().unwrap_or_else(|e| e.into_inner());
                while e.requested == e.started && !stop.load(Ordering::Relaxed) {
                    e = self
                        .ends_changed
                        .wait_timeout(e, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                e.started = e.requested;
                e.started
            };
            match self.end_offsets() {
                Ok(highs) => {
                    if warned {
                        tracing::info!("end of the jobs topic readable again");
                        warned = false;
                    }
                    let mut e = self.ends_state.lock().unwrap_or_else(|e| e.into_inner());
                    e.answered = ticket;
                    e.highs = highs;
                    self.ends_changed.notify_all();
                }
                Err(err) => {
                    if !warned {
                        tracing::warn!("cannot read the end of the jobs topic ({err}); retrying");
                        warned = true;
                    }
                    // Ask again after a pause; the waiting batches keep their tickets.
                    self.ends_state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .started = ticket - 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// The end offset of every jobs partition, in one request ([`super::end_offsets`]).
    fn end_offsets(&self) -> Result<Vec<(i32, i64)>, String> {
        super::end_offsets(
            &self.ends,
            &self.topic,
            &self.partitions,
            Duration::from_secs(5),
        )
        .map_err(|e| format!("{e:#}"))
    }

    /// Blocks until the reader has caught up with the jobs topic's end offsets as a query
    /// started after `ticket` was handed out found them. Returns false if `abort` was raised
    /// first.
    fn catch_up(&self, ticket: u64, abort: &AtomicBool) -> bool {
        let highs = {
            let mut e = self.ends_state.lock().unwrap_or_else(|e| e.into_inner());
            while e.answered < ticket {
                if abort.load(Ordering::Relaxed) {
                    return false;
                }
                e = self
                    .ends_changed
                    .wait_timeout(e, Duration::from_millis(200))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            e.highs.clone()
        };
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if highs
                .iter()
                .all(|(p, h)| st.position.get(p).copied().unwrap_or(0) >= *h)
            {
                return true;
            }
            if abort.load(Ordering::Relaxed) {
                return false;
            }
            st = self
                .changed
                .wait_timeout(st, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The share consumer's context: rebalances reset partition state, statistics give lag.

struct NodeContext {
    tracker: Arc<Mutex<OffsetTracker>>,
    metrics: Arc<Metrics>,
    topic: String,
    /// Exactly-once delivery: the partitions' transactional producers.
    tx: Option<Arc<TxRegistry>>,
}

impl ClientContext for NodeContext {
    fn stats(&self, s: Statistics) {
        if let Some(t) = s.topics.get(&self.topic) {
            for (p, st) in &t.partitions {
                // Only partitions being fetched: librdkafka goes on reporting ones given up.
                if *p >= 0 && st.consumer_lag >= 0 && st.fetch_state == "active" {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[&p.to_string()])
                        .set(st.consumer_lag);
                }
            }
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        super::log_librdkafka(level, fac, msg);
    }
}

impl ConsumerContext for NodeContext {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let (Rebalance::Assign(tpl), Some(tx)) = (r, &self.tx) {
            // Before the assignment reads the committed offsets: fence the previous owner
            // and end its open transaction, so that the offsets read are final.
            for e in tpl.elements() {
                if let Err(err) = tx.gain(e.partition(), &AtomicBool::new(true)) {
                    tracing::warn!(
                        partition = e.partition(),
                        "{err:#}; retried before the first transaction"
                    );
                }
            }
        }
        if let Rebalance::Revoke(tpl) = r {
            let mut t = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            for p in &parts {
                t.revoke(*p);
                self.metrics.forget_partition(*p);
            }
            tracing::info!(?parts, "partitions revoked");
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        match r {
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(?parts, "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!("rebalance error: {e}"),
            Rebalance::Revoke(_) => {}
        }
    }
}

type ShareConsumer = StreamConsumer<NodeContext>;

// ---------------------------------------------------------------------------------------
// Work moving through the pipeline.

/// One share message.
struct Item {
    partition: i32,
    offset: i64,
    generation: u64,
    key: Option<Vec<u8>>,
    ts: i64,
    records: Vec<ShareRecord>,
    /// Exactly-once delivery: a message that is not a share batch (its payload and why),
    /// sent to the dead-letter topic in the partition's transaction.
    dead: Option<(Vec<u8>, String)>,
}

/// A batch of share messages on its way; holds an in-flight permit until acknowledged.
///
/// With several lanes a gathered batch is split into one `Work` per lane; the parts share
/// the batch's permit and in-flight count, which are released with the last of them.
struct Work {
    items: Vec<Item>,
    shares: usize,
    fetched: Instant,
    /// The end-offset query of the jobs topic asked for when the batch was dispatched.
    jobs_ticket: u64,
    _permit: Arc<OwnedSemaphorePermit>,
    _inflight: Arc<crate::metrics::InflightGuard>,
}

/// Which validation lane each partition's shares go to. A partition stays in its lane for as
/// long as this node holds it (its validator, with its duplicate sets, lives there). A
/// partition new to the node, or taken away and given back since (its validator is rebuilt
/// then anyway), goes to the lane with the fewest partitions the node still holds: a node
/// given partitions 0, 4, 8 and 12 of a topic still spreads them over 4 lanes, and lanes
/// stay even across rebalances.
struct Lanes {
    senders: Vec<std::sync::mpsc::Sender<Work>>,
    /// partition → (lane, the partition's generation when it was placed there)
    of: HashMap<i32, (usize, u64)>,
}

impl Lanes {
    /// The lane of a share message of `partition` fetched in `generation`; `current` gives a
    /// partition's generation now (it moves on when the partition is taken away).
    fn lane(&mut self, partition: i32, generation: u64, current: impl Fn(i32) -> u64) -> usize {
        match self.of.get(&partition) {
            Some(&(l, g)) if g == generation => return l,
            _ => {}
        }
        let mut load = vec![0usize; self.senders.len()];
        for (&p, &(l, g)) in &self.of {
            if p != partition && current(p) == g {
                load[l] += 1;
            }
        }
        let l = (0..load.len()).min_by_key(|&l| load[l]).unwrap_or(0);
        self.of.insert(partition, (l, generation));
        l
    }

    /// Hands a gathered batch to the lanes, split by partition (items keep their order within
    /// each lane). False once a lane has stopped.
    fn send(&mut self, work: Work, tracker: &Mutex<OffsetTracker>) -> bool {
        if self.senders.len() == 1 {
            return self.senders[0].send(work).is_ok();
        }
        let current = |p| {
            tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .generation(p)
        };
        let mut parts: Vec<Option<Work>> = (0..self.senders.len()).map(|_| None).collect();
        let Work {
            items,
            fetched,
            jobs_ticket,
            _permit,
            _inflight,
            ..
        } = work;
        for item in items {
            let l = self.lane(item.partition, item.generation, current);
            let w = parts[l].get_or_insert_with(|| Work {
                items: Vec::new(),
                shares: 0,
                fetched,
                jobs_ticket,
                _permit: _permit.clone(),
                _inflight: _inflight.clone(),
            });
            w.shares += item.records.len();
            w.items.push(item);
        }
        parts
            .into_iter()
            .zip(&self.senders)
            .all(|(w, tx)| w.is_none_or(|w| tx.send(w).is_ok()))
    }
}

struct Hashed {
    work: Work,
    /// One per item of `work`, in order.
    out: Vec<Encoded>,
}

type StatusCounts = [u64; Status::ALL.len()];

/// A share message's output, encoded in the hash stage as the verdicts come out of check 7.
struct Encoded {
    /// The verdict message (one verdict per share record, in record order).
    verdicts: Vec<u8>,
    /// One message per block candidate: its verdict with the full header.
    blocks: Vec<Vec<u8>>,
    counts: StatusCounts,
}

impl Encoded {
    /// The (topic, payload) messages of this output: the verdict message, then the block
    /// messages.
    fn messages(self, topics: &crate::config::TopicsConfig) -> Vec<(String, Vec<u8>)> {
        let mut msgs = Vec::with_capacity(1 + self.blocks.len());
        msgs.push((topics.verdicts.clone(), self.verdicts));
        for b in self.blocks {
            msgs.push((topics.blocks.clone(), b));
        }
        msgs
    }
}

/// Check 7 on a hashed batch, with the verdicts written straight into each item's messages
/// (`sizes`: each item's record count; the batch holds one verdict per record, in item
/// order).
fn encode_outputs(batch: &mut Batch, hashes: &[State], sizes: &[usize]) -> Vec<Encoded> {
    let mut out: Vec<(VerdictWriter, Vec<Vec<u8>>, StatusCounts)> = sizes
        .iter()
        .map(|&n| (VerdictWriter::with_capacity(n), Vec::new(), [0; _]))
        .collect();
    let mut at = 0;
    batch.finish_each(hashes, |v| {
        // Past the items whose records are all written (or that have none).
        while at + 1 < sizes.len() && out[at].0.len() >= sizes[at] {
            at += 1;
        }
        let Some(o) = out.get_mut(at) else { return };
        o.2[v.status as usize] += 1;
        if v.status == Status::Block {
            o.1.push(encode_verdicts(std::slice::from_ref(&v)));
        }
        o.0.push(&v);
    });
    out.into_iter()
        .map(|(w, blocks, counts)| Encoded {
            verdicts: w.finish(),
            blocks,
            counts,
        })
        .collect()
}

/// Everything the stages share.
struct Shared {
    cfg: Config,
    consumer: ShareConsumer,
    producer: FutureProducer,
    tracker: Arc<Mutex<OffsetTracker>>,
    metrics: Arc<Metrics>,
    /// Raised when shutdown has run out of time: stages stop retrying and waiting.
    abort: AtomicBool,
    /// Exactly-once delivery: the partitions' transactional producers.
    tx: Option<Arc<TxRegistry>>,
    /// Requests of the transaction workers to the gatherer (which owns the fetch position).
    ctl: tokio::sync::mpsc::UnboundedSender<Ctl>,
    /// at_least_once: permits for batches produced and not yet acknowledged.
    unacked: Arc<Semaphore>,
    /// at_least_once: permits for dead letters produced and not yet acknowledged.
    dead_unacked: Arc<Semaphore>,
}

impl Shared {
    /// Marks a share message done and stores the offset if it moved.
    fn complete(&self, partition: i32, generation: u64, offset: i64) {
        self.complete_many(&[(partition, generation, offset)]);
    }

    /// [`Shared::complete`] for several share messages at once: one lock of the tracker and
    /// one offset store for all of them (a batch of small share messages completes
    /// hundreds).
    fn complete_many(&self, done: &[(i32, u64, i64)]) {
        let mut moved: Vec<(i32, i64)> = Vec::new();
        {
            let mut t = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
            for &(p, g, o) in done {
                if let Some(next) = t.complete(p, g, o) {
                    match moved.iter_mut().find(|m| m.0 == p) {
                        Some(m) => m.1 = m.1.max(next),
                        None => moved.push((p, next)),
                    }
                }
            }
        }
        if moved.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(moved.len());
        let topic = &self.cfg.kafka.topics.shares;
        for (p, next) in &moved {
            if tpl
                .add_partition_offset(topic, *p, Offset::Offset(*next))
                .is_err()
            {
                return;
            }
        }
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            // A partition was revoked meanwhile; its new owner re-reads it.
            tracing::debug!("offsets {moved:?} not stored: {e}");
        }
    }

    /// Enqueues a message, waiting (without reordering) while librdkafka's queue is full.
    async fn produce(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<DeliveryFuture, KafkaError> {
        let mut rec = FutureRecord::<[u8], [u8]>::to(topic)
            .payload(payload)
            .headers(headers);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        loop {
            match self.producer.send_result(rec) {
                Ok(f) => return Ok(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Produces `msgs` (topic, payload) for one source message until all are acknowledged,
    /// with the headers `headers` makes (built again for each retry rather than kept: a
    /// header set is a librdkafka allocation, and copying and freeing one per message cost
    /// more than building it). Returns false if shutdown ran out of time first (the offset
    /// is then not stored and the message is validated again after restart).
    async fn deliver(
        &self,
        msgs: &[(String, Vec<u8>)],
        key: Option<&[u8]>,
        headers: &(dyn Fn() -> OwnedHeaders + Send + Sync),
        mut futs: Vec<DeliveryFuture>,
    ) -> bool {
        loop {
            let mut ok = futs.len() == msgs.len();
            for f in futs.drain(..) {
                match f.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => {
                        tracing::warn!("verdict delivery failed ({e}); producing again");
                        ok = false;
                    }
                    Err(_) => ok = false,
                }
            }
            if ok {
                return true;
            }
            if self.abort.load(Ordering::Relaxed) {
                return false;
            }
            self.metrics.delivery_retries.inc();
            tokio::time::sleep(Duration::from_millis(500)).await;
            for (topic, payload) in msgs {
                match self.produce(topic, key, payload, headers()).await {
                    Ok(f) => futs.push(f),
                    Err(e) => tracing::warn!("cannot produce to {topic}: {e}"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------

/// Runs the node until `shutdown` turns true.
pub async fn run(
    cfg: Config,
    backend: Box<dyn Backend>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<NodeSummary> {
    let k = &cfg.kafka;
    let tracker = Arc::new(Mutex::new(OffsetTracker::new()));

    // Share consumer: a group member; offsets are stored by hand, committed by librdkafka.
    let mut cc = reader_config(k, "sharecheck-node");
    cc.set("group.id", &k.group_id)
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000");
    for (key, v) in &k.consumer {
        cc.set(key, v);
    }
    cc.set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false");
    let tx = k.is_exactly_once().then(|| Arc::new(TxRegistry::new(k)));
    if tx.is_some() {
        // Offsets are committed by the transactions only. read_committed makes the offset
        // fetch of a gained partition wait for a transaction that still holds offsets.
        cc.set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
    }
    let consumer: ShareConsumer = cc
        .create_with_context(NodeContext {
            tracker: tracker.clone(),
            metrics: metrics.clone(),
            topic: k.topics.shares.clone(),
            tx: tx.clone(),
        })
        .map_err(|e| anyhow::anyhow!("cannot create the share consumer: {e}"))?;
    let producer: FutureProducer = producer_config(k, "sharecheck-node")
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create the verdict producer: {e}"))?;

    // Jobs reader: no group, every partition from the beginning.
    let jc: BaseConsumer<ReaderContext> = reader_config(k, "sharecheck-jobs")
        .create_with_context(ReaderContext)
        .map_err(|e| anyhow::anyhow!("cannot create the jobs reader: {e}"))?;
    let jparts = tokio::task::block_in_place(|| {
        partitions_of(&jc, &k.topics.jobs, Duration::from_secs(30))
    })?;
    let mut tpl = TopicPartitionList::new();
    for p in &jparts {
        tpl.add_partition_offset(&k.topics.jobs, *p, Offset::Beginning)?;
    }
    jc.assign(&tpl)?;
    let jobs = Arc::new(JobLog {
        state: Mutex::new(JobState {
            base: 0,
            jobs: VecDeque::new(),
            position: HashMap::new(),
        }),
        changed: Condvar::new(),
        consumer: jc,
        ends: reader_config(k, "sharecheck-jobs-end")
            .create_with_context(ReaderContext)
            .map_err(|e| anyhow::anyhow!("cannot create the jobs end-offset client: {e}"))?,
        topic: k.topics.jobs.clone(),
        partitions: jparts,
        dead: JobDeadLetters {
            producer: producer.clone(),
            topic: k.topics.dead_letter.clone(),
            runtime: tokio::runtime::Handle::current(),
        },
        ends_state: Mutex::new(EndsState::default()),
        ends_changed: Condvar::new(),
    });
    let stop_jobs = Arc::new(AtomicBool::new(false));
    let ttl_ms = (cfg.validation.job_ttl_s as i64).saturating_mul(1000);
    let job_thread = {
        let (jobs, stop, m) = (jobs.clone(), stop_jobs.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("jobs-reader".into())
            .spawn(move || jobs.read(&stop, ttl_ms, &m))?
    };
    let ends_thread = {
        let (jobs, stop) = (jobs.clone(), stop_jobs.clone());
        std::thread::Builder::new()
            .name("jobs-ends".into())
            .spawn(move || jobs.query_ends(&stop))?
    };

    // Kafka mode: the consumer group spreads the partitions. ZooKeeper mode: the coordinator
    // does, and the consumer is assigned partitions by hand (see `balance_command`).
    let mut balance = if cfg.balance.is_zookeeper() {
        Some(crate::balance::join(&cfg, backend.as_ref()).await?)
    } else {
        consumer
            .subscribe(&[&k.topics.shares])
            .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", k.topics.shares))?;
        None
    };
    let mut owned: std::collections::HashSet<i32> = Default::default();
    tracing::info!(
        brokers = %k.brokers, group = %k.group_id, shares = %k.topics.shares,
        backend = %backend.name(), balance = %cfg.balance.mode, lanes = cfg.backend.lanes(),
        "validator node started"
    );

    let (ctl_tx, mut ctl_rx) = tokio::sync::mpsc::unbounded_channel::<Ctl>();
    let nlanes = cfg.backend.lanes();
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        consumer,
        producer,
        tracker,
        metrics: metrics.clone(),
        abort: AtomicBool::new(false),
        tx,
        ctl: ctl_tx,
        unacked: Arc::new(Semaphore::new(
            cfg.kafka.max_unacked_batches.max(1) * nlanes,
        )),
        dead_unacked: Arc::new(Semaphore::new(MAX_DEAD_LETTERS_UNACKED)),
    });

    // Stages: per lane a thread for checks 1–6 and one for hashing, check 7 and encoding,
    // all feeding one producer stage. Each lane keeps up to `inflight` batches.
    let inflight = cfg.backend.inflight.max(1);
    let sem = Arc::new(Semaphore::new(inflight * nlanes));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Hashed>();
    let fatal = Arc::new(Mutex::new(None::<String>));
    let backend: Arc<dyn Backend> = Arc::from(backend);
    let mut lanes = Lanes {
        senders: Vec::with_capacity(nlanes),
        of: HashMap::new(),
    };
    let mut stage_threads = Vec::with_capacity(2 * nlanes);
    for lane in 0..nlanes {
        let (work_tx, work_rx) = std::sync::mpsc::channel::<Work>();
        let (hash_tx, hash_rx) = std::sync::mpsc::sync_channel::<(Work, Batch)>(inflight);
        lanes.senders.push(work_tx);
        let (jobs, sh) = (jobs.clone(), shared.clone());
        let vcfg = cfg.validation.clone();
        let name = |stage: &str| match nlanes {
            1 => stage.to_string(),
            _ => format!("{stage}-{lane}"),
        };
        stage_threads.push(
            std::thread::Builder::new()
                .name(name("prepare"))
                .spawn(move || prepare_stage(work_rx, hash_tx, &jobs, &sh, vcfg))?,
        );
        let (sh, fatal, backend, done_tx) = (
            shared.clone(),
            fatal.clone(),
            backend.clone(),
            done_tx.clone(),
        );
        stage_threads.push(
            std::thread::Builder::new()
                .name(name("hash"))
                .spawn(move || hash_stage(hash_rx, done_tx, backend.as_ref(), &sh, &fatal))?,
        );
    }
    drop(done_tx);
    let producer_stage = {
        let sh = shared.clone();
        tokio::spawn(async move {
            if sh.tx.is_some() {
                let mut workers = HashMap::new();
                while let Some(h) = done_rx.recv().await {
                    dispatch_transactions(&sh, h, &mut workers);
                }
                let handles: Vec<_> = workers.into_values().map(|(_, h)| h).collect();
                let _ = tokio::task::spawn_blocking(move || {
                    for h in handles {
                        let _ = h.join();
                    }
                })
                .await;
                return;
            }
            let mut tasks = tokio::task::JoinSet::new();
            while let Some(h) = done_rx.recv().await {
                produce_batch(&sh, h, &mut tasks).await;
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        })
    };

    let progress = tokio::spawn(log_progress(metrics.clone()));

    // Gatherer: this task.
    let mut summary = NodeSummary::default();
    let mut dead = tokio::task::JoinSet::new();
    let max_shares = cfg.backend.batch.max_shares;
    let max_wait = Duration::from_millis(cfg.backend.batch.max_wait_ms);
    let mut pending: Vec<Item> = Vec::new();
    let mut pending_shares = 0usize;
    let mut first_at = Instant::now();
    let mut last_err = Instant::now() - Duration::from_secs(60);
    loop {
        if fatal.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
            break;
        }
        let flush_at = tokio::time::Instant::from_std(first_at + max_wait);
        let msg = tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep_until(flush_at), if !pending.is_empty() => None,
            m = shared.consumer.recv() => Some(m),
            Some(cmd) = next_command(&mut balance) => {
                balance_command(&shared, cmd, &mut owned);
                continue;
            }
            Some(c) = ctl_rx.recv() => {
                control(&shared, c);
                continue;
            }
        };
        match msg {
            None => {}
            // ZooKeeper mode: a message of a partition given up meanwhile is left to its
            // next owner.
            Some(Ok(m)) if balance.is_some() && !owned.contains(&m.partition()) => continue,
            Some(Err(e)) => {
                if last_err.elapsed() > Duration::from_secs(5) {
                    tracing::warn!("share consumer: {e}");
                    last_err = Instant::now();
                }
                continue;
            }
            Some(Ok(m)) => {
                summary.messages += 1;
                match take_message(&shared, &m) {
                    Taken::Item(item) => {
                        if item.dead.is_some() {
                            summary.dead_letters += 1;
                        }
                        if pending.is_empty() {
                            first_at = Instant::now();
                        }
                        pending_shares += item.records.len();
                        summary.shares += item.records.len() as u64;
                        pending.push(item);
                    }
                    Taken::Dead(d) => {
                        summary.dead_letters += 1;
                        // Finished deliveries leave their results in the set until reaped.
                        while dead.try_join_next().is_some() {}
                        let permit = tokio::select! {
                            p = shared.dead_unacked.clone().acquire_owned() => p.ok(),
                            _ = shutdown.changed() => None,
                        };
                        // Without a permit (shutdown) the message is left uncommitted and
                        // read again after the restart.
                        let Some(permit) = permit else { break };
                        dead.spawn(d.deliver(shared.clone(), permit));
                    }
                }
                if pending_shares < max_shares && first_at.elapsed() < max_wait {
                    continue;
                }
            }
        }
        if pending.is_empty() {
            continue;
        }
        // Dispatch once the in-flight limit allows. Meanwhile librdkafka keeps fetching into
        // its bounded queue, and the next batch takes what arrived. Only a long stall (the
        // backend or the broker away) pauses the partitions: a pause drops librdkafka's
        // prefetched messages and its fetcher restarts with a backoff, which made every
        // routine wait for a permit cost about half a second of latency.
        let permit = match sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let quick = tokio::select! {
                    p = sem.clone().acquire_owned() => p.ok(),
                    _ = tokio::time::sleep(PAUSE_AFTER) => None,
                    _ = shutdown.changed() => break,
                };
                match quick {
                    Some(p) => p,
                    None => {
                        let assigned = shared.consumer.assignment().ok();
                        if let Some(a) = &assigned {
                            let _ = shared.consumer.pause(a);
                        }
                        let p = tokio::select! {
                            p = sem.clone().acquire_owned() => p.ok(),
                            _ = shutdown.changed() => None,
                        };
                        if let Some(a) = &assigned {
                            let _ = shared.consumer.resume(a);
                        }
                        match p {
                            Some(p) => p,
                            None => break,
                        }
                    }
                }
            }
        };
        let work = Work {
            items: std::mem::take(&mut pending),
            shares: std::mem::take(&mut pending_shares),
            fetched: first_at,
            jobs_ticket: jobs.request_ends(),
            _permit: Arc::new(permit),
            _inflight: Arc::new(metrics.inflight_guard()),
        };
        if !lanes.send(work, &shared.tracker) {
            break;
        }
    }

    // Shutdown: stop fetching, drain what is in flight, commit.
    metrics.healthy.store(false, Ordering::Relaxed);
    progress.abort();
    let t0 = Instant::now();
    tracing::info!("shutting down: draining in-flight batches");
    if !pending.is_empty() {
        // Already fetched: validate it too if a slot frees up in time.
        if let Ok(Ok(permit)) =
            tokio::time::timeout(Duration::from_secs(2), sem.clone().acquire_owned()).await
        {
            lanes.send(
                Work {
                    items: std::mem::take(&mut pending),
                    shares: pending_shares,
                    fetched: first_at,
                    jobs_ticket: jobs.request_ends(),
                    _permit: Arc::new(permit),
                    _inflight: Arc::new(metrics.inflight_guard()),
                },
                &shared.tracker,
            );
        }
    }
    drop(lanes);
    let deadline = tokio::time::Instant::from_std(t0 + DRAIN_LIMIT);
    let drained = tokio::time::timeout_at(deadline, async {
        let _ = producer_stage.await;
        while dead.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!("in-flight batches not acknowledged in time; they will be validated again");
    }
    shared.abort.store(true, Ordering::Relaxed);
    let stored = shared
        .tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .stored();
    // Exactly-once: the transactions committed the offsets.
    if !stored.is_empty() && shared.tx.is_none() {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &stored {
            tpl.add_partition_offset(&cfg.kafka.topics.shares, *p, Offset::Offset(*o))?;
        }
        let sh = shared.clone();
        let r =
            tokio::task::spawn_blocking(move || sh.consumer.commit(&tpl, CommitMode::Sync)).await;
        match r {
            Ok(Ok(())) => tracing::info!(offsets = ?stored, "offsets committed"),
            Ok(Err(e)) => tracing::warn!(
                "final commit failed ({e}); the broker keeps the last periodic commit"
            ),
            Err(e) => tracing::warn!("final commit failed: {e}"),
        }
    }
    summary.committed = stored;
    if let Some(b) = balance {
        for p in &owned {
            tracing::info!(partition = p, "partition stopped");
        }
        // Only now, with the offsets committed, may other nodes take the partitions.
        drop(b.commands);
        b.coordinator.close().await;
    }
    stop_jobs.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = job_thread.join();
        let _ = ends_thread.join();
        for t in stage_threads {
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

/// Logs every [`PROGRESS_EVERY`] the verdicts produced since the last line, with the rate,
/// the consumer lag and the jobs held, while there are any.
async fn log_progress(m: Arc<crate::metrics::Metrics>) {
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

/// What the gatherer makes of a fetched message.
enum Taken {
    /// A share batch (or, with exactly-once delivery, a dead letter for the partition's
    /// transaction).
    Item(Item),
    /// at_least_once: an undecodable message for the dead-letter topic.
    Dead(DeadLetter),
}

/// An undecodable share message on its way to the dead-letter topic (at_least_once).
struct DeadLetter {
    topic: String,
    partition: i32,
    offset: i64,
    generation: u64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    error: String,
}

impl DeadLetter {
    /// Produces it until acknowledged, then completes its offset; `_permit` bounds the dead
    /// letters in flight.
    async fn deliver(self, sh: Arc<Shared>, _permit: OwnedSemaphorePermit) {
        let DeadLetter {
            topic,
            partition: p,
            offset: o,
            generation,
            key,
            payload,
            error,
        } = self;
        let headers = move || {
            source_headers(&topic, p, o).insert(Header {
                key: H_ERROR,
                value: Some(&error),
            })
        };
        let msgs = vec![(sh.cfg.kafka.topics.dead_letter.clone(), payload)];
        let f = sh
            .produce(&msgs[0].0, key.as_deref(), &msgs[0].1, headers())
            .await;
        let futs = f.into_iter().collect();
        if sh.deliver(&msgs, key.as_deref(), &headers, futs).await {
            sh.complete(p, generation, o);
        }
    }
}

/// Turns a fetched message into a pipeline item, or into a dead letter.
fn take_message(sh: &Arc<Shared>, m: &BorrowedMessage<'_>) -> Taken {
    let (p, o) = (m.partition(), m.offset());
    let generation = sh
        .tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .register(p, o);
    let payload = m.payload().unwrap_or(&[]);
    let key = m.key().map(<[u8]>::to_vec);
    let ts = m.timestamp().to_millis().unwrap_or_else(now_ms);
    let (records, dead) = match decode_shares(payload) {
        Ok(recs) => (recs.to_vec(), None),
        Err(e) => {
            tracing::warn!(
                partition = p,
                offset = o,
                "undecodable message to the dead-letter topic: {e}"
            );
            sh.metrics.dead_letters.inc();
            if sh.tx.is_none() {
                return Taken::Dead(DeadLetter {
                    topic: m.topic().to_string(),
                    partition: p,
                    offset: o,
                    generation,
                    key,
                    payload: payload.to_vec(),
                    error: e.to_string(),
                });
            }
            // Exactly-once: the dead letter goes in the partition's transaction.
            (Vec::new(), Some((payload.to_vec(), e.to_string())))
        }
    };
    Taken::Item(Item {
        partition: p,
        offset: o,
        generation,
        key,
        ts,
        records,
        dead,
    })
}

/// Hashes each prepared batch with the backend, then runs check 7 and encodes the verdicts
/// straight into each share message's output. A backend failure is fatal to the node (it
/// stops, and the batch's shares are validated again after the restart).
fn hash_stage(
    rx: std::sync::mpsc::Receiver<(Work, Batch)>,
    tx: tokio::sync::mpsc::UnboundedSender<Hashed>,
    backend: &dyn Backend,
    sh: &Shared,
    fatal: &Mutex<Option<String>>,
) {
    let mut hashes: Vec<State> = Vec::new();
    for (work, mut batch) in rx {
        hashes.clear();
        hashes.resize(batch.tasks.len(), [0; 8]);
        let t0 = Instant::now();
        if let Err(e) = backend.hash(&batch.jobs, &batch.tasks, &mut hashes) {
            *fatal.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("backend {} failed: {e:#}", backend.name()));
            return;
        }
        sh.metrics.backend_busy.inc_by(t0.elapsed().as_secs_f64());
        let sizes: Vec<usize> = work.items.iter().map(|i| i.records.len()).collect();
        let out = encode_outputs(&mut batch, &hashes, &sizes);
        if tx.send(Hashed { work, out }).is_err() {
            return;
        }
    }
}

/// Checks 1–6 for each batch, after the jobs reader caught up with the jobs topic.
///
/// One [`Validator`] per share partition: duplicates are tracked per partition by contract,
/// so the duplicate sets are per partition anyway, and a whole validator per partition keeps
/// the rules in one place untouched and lets a revoked partition's state go in one step.
/// What it costs is each job's context (a midstate and a few hundred bytes) once per
/// partition, which is small beside the duplicate sets.
fn prepare_stage(
    rx: std::sync::mpsc::Receiver<Work>,
    tx: std::sync::mpsc::SyncSender<(Work, Batch)>,
    jobs: &JobLog,
    sh: &Shared,
    vcfg: ValidationConfig,
) {
    // partition → (generation, validator, absolute index of the next job to apply)
    let mut validators: HashMap<i32, (u64, Validator, u64)> = HashMap::new();
    let mut rebuilder = super::rebuild::Rebuilder::new(&sh.cfg.kafka, vcfg.job_ttl_s);
    for mut work in rx {
        // Items of partitions taken away since they were fetched belong to the next owner,
        // and so do those partitions' state: their validators (duplicate sets and all) go,
        // and one given back is rebuilt from the shares topic.
        {
            let t = sh.tracker.lock().unwrap_or_else(|e| e.into_inner());
            work.items
                .retain(|it| t.generation(it.partition) == it.generation);
            validators.retain(|&p, e| t.generation(p) == e.0);
        }
        let t0 = Instant::now();
        if !jobs.catch_up(work.jobs_ticket, &sh.abort) {
            return;
        }
        tracing::trace!("jobs caught up in {:?}", t0.elapsed());
        for item in &work.items {
            if validators
                .get(&item.partition)
                .is_none_or(|e| e.0 != item.generation)
            {
                let (v, applied) = gained_partition(item, jobs, sh, &vcfg, &mut rebuilder);
                validators.insert(item.partition, (item.generation, v, applied));
            }
        }
        // The jobs published so far, into the validators of the batch's partitions; the
        // job log stays locked only for that (other lanes and the jobs reader use it too).
        {
            let st = jobs.state.lock().unwrap_or_else(|e| e.into_inner());
            let end = st.base + st.jobs.len() as u64;
            for item in &work.items {
                let e = validators
                    .entry(item.partition)
                    .or_insert_with(|| (item.generation, Validator::new(vcfg.clone()), 0));
                if e.0 != item.generation {
                    *e = (item.generation, Validator::new(vcfg.clone()), 0);
                }
                let from = e.2.max(st.base);
                for i in from..end {
                    let (ctx, ts) = &st.jobs[(i - st.base) as usize];
                    e.1.add_job_ctx_at(ctx.clone(), *ts);
                }
                e.2 = end;
            }
        }
        let mut batch = Batch::with_capacity(work.shares);
        for item in &work.items {
            let e = validators
                .entry(item.partition)
                .or_insert_with(|| (item.generation, Validator::new(vcfg.clone()), 0));
            for rec in &item.records {
                e.1.check_at(rec, item.ts, &mut batch);
            }
        }
        if tx.send((work, batch)).is_err() {
            return;
        }
    }
}

/// A validator for a partition this node just gained (its first message to validate is
/// `item`): the jobs, then the duplicate sets of the shares before `item`, replayed by
/// [`super::rebuild`]. Returns it with the job-log index it applied up to.
fn gained_partition(
    item: &Item,
    jobs: &JobLog,
    sh: &Shared,
    vcfg: &ValidationConfig,
    rebuilder: &mut super::rebuild::Rebuilder,
) -> (Validator, u64) {
    let mut v = Validator::new(vcfg.clone());
    let applied = {
        let st = jobs.state.lock().unwrap_or_else(|e| e.into_inner());
        for (ctx, ts) in &st.jobs {
            v.add_job_ctx_at(ctx.clone(), *ts);
        }
        st.base + st.jobs.len() as u64
    };
    let t0 = Instant::now();
    match rebuilder.rebuild(&mut v, item.partition, item.offset, &sh.abort) {
        Ok(r) => {
            sh.metrics.rebuilt_shares.inc_by(r.recorded);
            tracing::info!(
                partition = item.partition,
                from = r.from,
                until = r.until,
                shares = r.shares,
                recorded = r.recorded,
                complete = r.complete,
                "duplicate sets rebuilt in {:.0?}",
                t0.elapsed()
            );
        }
        Err(e) => tracing::warn!(
            partition = item.partition,
            "duplicate sets not rebuilt ({e:#}); copies of earlier shares go undetected"
        ),
    }
    (v, applied)
}

/// Produces the verdict message of every share message in a hashed batch (and a block
/// message per block), then, in a task, waits for the acknowledgements and stores offsets.
///
/// The batch's in-flight permit is released once its messages are with the producer, so the
/// backend goes on with the next batches during the broker's round trip; an unacknowledged
/// batch holds a `kafka.max_unacked_batches` permit instead, and only its output (not its
/// shares) until the acknowledgement.
async fn produce_batch(sh: &Arc<Shared>, h: Hashed, tasks: &mut tokio::task::JoinSet<()>) {
    let Hashed { work, out } = h;
    let Ok(unacked) = sh.unacked.clone().acquire_owned().await else {
        return;
    };
    let topics = &sh.cfg.kafka.topics;
    let Work {
        items,
        shares,
        fetched,
        _inflight: inflight,
        _permit: permit,
        ..
    } = work;
    let mut outs = Vec::with_capacity(items.len());
    let mut counts = StatusCounts::default();
    for (item, enc) in items.into_iter().zip(out) {
        for (c, n) in counts.iter_mut().zip(enc.counts) {
            *c += n;
        }
        let msgs = enc.messages(topics);
        let mut futs = Vec::with_capacity(msgs.len());
        for (t, p) in &msgs {
            let headers = source_headers(&topics.shares, item.partition, item.offset);
            match sh.produce(t, item.key.as_deref(), p, headers).await {
                Ok(f) => futs.push(f),
                Err(e) => tracing::warn!("cannot produce to {t}: {e}"),
            }
        }
        outs.push(Pending {
            partition: item.partition,
            offset: item.offset,
            generation: item.generation,
            key: item.key,
            msgs,
            futs,
        });
    }
    for (s, n) in Status::ALL.iter().zip(counts) {
        if n > 0 {
            sh.metrics.shares.with_label_values(&[s.as_str()]).inc_by(n);
        }
    }
    sh.metrics.batches.inc();
    sh.metrics.batch_shares.observe(shares as f64);
    // Everything is with the producer: the backend may take the next batch.
    drop(permit);
    let sh = sh.clone();
    tasks.spawn(async move {
        let mut done = Vec::with_capacity(outs.len());
        for o in outs {
            let shares = &sh.cfg.kafka.topics.shares;
            let headers = || source_headers(shares, o.partition, o.offset);
            if !sh
                .deliver(&o.msgs, o.key.as_deref(), &headers, o.futs)
                .await
            {
                // Shutdown ran out of time: what was acknowledged is still stored.
                break;
            }
            done.push((o.partition, o.generation, o.offset));
        }
        sh.complete_many(&done);
        sh.metrics
            .batch_latency
            .observe(fetched.elapsed().as_secs_f64());
        drop((inflight, unacked));
    });
}

/// A share message's output on its way: kept until acknowledged, to produce it again after
/// a failed delivery.
struct Pending {
    partition: i32,
    offset: i64,
    generation: u64,
    key: Option<Vec<u8>>,
    msgs: Vec<(String, Vec<u8>)>,
    futs: Vec<DeliveryFuture>,
}

// ---------------------------------------------------------------------------------------
// ZooKeeper mode: partitions started and stopped on the coordinator's word.

/// The next command of the ZooKeeper coordinator; never ready in Kafka mode.
async fn next_command(
    b: &mut Option<crate::balance::NodeBalance>,
) -> Option<crate::balance::Command> {
    match b {
        Some(b) => b.commands.recv().await,
        None => std::future::pending().await,
    }
}

/// Carries out a coordinator command on the share consumer.
fn balance_command(
    sh: &Arc<Shared>,
    cmd: crate::balance::Command,
    owned: &mut std::collections::HashSet<i32>,
) {
    use crate::balance::Command;
    let topic = &sh.cfg.kafka.topics.shares;
    match cmd {
        Command::Start(p) => {
            // A new generation: validators start empty, completions from an earlier
            // ownership store nothing.
            sh.tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .revoke(p);
            if let Some(tx) = &sh.tx {
                // Before the committed offset is read: fence the previous owner and end its
                // open transaction, so that the offset read is final.
                let r = tokio::task::block_in_place(|| tx.gain(p, &sh.abort));
                if let Err(e) = r {
                    tracing::warn!(partition = p, "{e:#}; retried before the first transaction");
                }
            }
            let mut tpl = TopicPartitionList::new();
            // Offset::Stored: from the group's committed offset (else auto.offset.reset).
            let r = tpl
                .add_partition_offset(topic, p, Offset::Stored)
                .and_then(|()| sh.consumer.incremental_assign(&tpl));
            match r {
                Ok(()) => {
                    owned.insert(p);
                    tracing::info!(partition = p, "partition started");
                }
                Err(e) => tracing::error!(partition = p, "cannot assign partition: {e}"),
            }
        }
        Command::Release(p, done) => {
            owned.remove(&p);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, p);
            if let Err(e) = sh.consumer.incremental_unassign(&tpl) {
                tracing::warn!(partition = p, "cannot unassign partition: {e}");
            }
            let sh = sh.clone();
            tokio::spawn(async move {
                release_partition(&sh, p).await;
                let _ = done.send(());
            });
        }
        Command::StopAll => {
            owned.clear();
            // Revoke before unassigning: nothing in flight stores an offset from here on.
            sh.tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .revoke_all();
            if let Err(e) = sh.consumer.unassign() {
                tracing::error!("cannot unassign the share partitions: {e}");
            }
            tracing::warn!("all partitions stopped");
        }
    }
}

/// Waits for the partition's in-flight messages to be acknowledged, commits its offset and
/// forgets it. After DRAIN_LIMIT it gives up waiting: the rest is validated again by the
/// next owner (at-least-once).
async fn release_partition(sh: &Arc<Shared>, p: i32) {
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        let n = sh
            .tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending_in(p);
        if n == 0 {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                partition = p,
                "{n} messages not acknowledged in time; the next owner validates them again"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored = {
        let mut t = sh.tracker.lock().unwrap_or_else(|e| e.into_inner());
        let o = t.stored_in(p);
        t.revoke(p);
        o
    };
    sh.metrics.forget_partition(p);
    // Exactly-once: the transactions committed the offset.
    if let Some(o) = stored.filter(|_| sh.tx.is_none()) {
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(&sh.cfg.kafka.topics.shares, p, Offset::Offset(o))
            .is_ok()
        {
            let c = sh.clone();
            match tokio::task::spawn_blocking(move || c.consumer.commit(&tpl, CommitMode::Sync))
                .await
            {
                Ok(Ok(())) => {
                    tracing::info!(partition = p, offset = o, "partition drained and committed")
                }
                Ok(Err(e)) => tracing::warn!(partition = p, "commit on release failed: {e}"),
                Err(e) => tracing::warn!(partition = p, "commit on release failed: {e}"),
            }
        }
    }
    tracing::info!(partition = p, "partition stopped");
}

// ---------------------------------------------------------------------------------------
// Exactly-once delivery: one transaction per partition per completed batch.

/// Requests of the transaction workers to the gatherer.
#[derive(Debug)]
enum Ctl {
    /// A transaction of `generation` was aborted: validate the partition again from
    /// `offset`, its last committed offset, with fresh validator state.
    Rewind {
        partition: i32,
        generation: u64,
        offset: i64,
    },
    /// The partition's producer is fenced (another node owns the partition): stop fetching.
    Fenced { partition: i32 },
}

/// Carries out a transaction worker's request on the share consumer.
fn control(sh: &Shared, c: Ctl) {
    let topic = &sh.cfg.kafka.topics.shares;
    match c {
        Ctl::Rewind {
            partition,
            generation,
            offset,
        } => {
            {
                let mut t = sh.tracker.lock().unwrap_or_else(|e| e.into_inner());
                if t.generation(partition) != generation {
                    // Revoked or rewound meanwhile: the new generation reads from the
                    // committed offset anyway.
                    return;
                }
                // Everything fetched of the old generation is dropped; what is fetched after
                // the seek is validated with fresh validator state.
                t.revoke(partition);
            }
            for attempt in 0.. {
                match sh.consumer.seek(
                    topic,
                    partition,
                    Offset::Offset(offset),
                    Duration::from_secs(5),
                ) {
                    Ok(()) => {
                        tracing::info!(
                            partition,
                            offset,
                            "partition rewound to its committed offset"
                        );
                        return;
                    }
                    Err(e) if attempt < 20 => {
                        tracing::debug!(partition, "seek: {e}; retrying");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => {
                        tracing::error!(
                            partition,
                            "cannot rewind to offset {offset} ({e}); partition paused"
                        );
                        break;
                    }
                }
            }
            pause_partition(sh, partition);
        }
        Ctl::Fenced { partition } => pause_partition(sh, partition),
    }
}

/// Stops fetching a partition until it is assigned again.
fn pause_partition(sh: &Shared, partition: i32) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&sh.cfg.kafka.topics.shares, partition);
    if let Err(e) = sh.consumer.pause(&tpl) {
        tracing::warn!(partition, "cannot pause partition: {e}");
    }
}

/// The output of one share message: its offset, key, headers and (topic, payload) messages.
struct TxMessage {
    offset: i64,
    key: Option<Vec<u8>>,
    headers: OwnedHeaders,
    out: Vec<(String, Vec<u8>)>,
    counts: [u64; Status::ALL.len()],
}

/// One partition's share of a hashed batch: written in one transaction.
struct TxJob {
    partition: i32,
    generation: u64,
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

type TxWorkers = HashMap<i32, (std::sync::mpsc::Sender<TxJob>, std::thread::JoinHandle<()>)>;

/// Splits a hashed batch by partition and hands each part to the partition's transaction
/// worker (started on first use). Batches arrive in fetch order and each worker takes its
/// jobs in order, so a partition's transactions commit in offset order.
fn dispatch_transactions(sh: &Arc<Shared>, h: Hashed, workers: &mut TxWorkers) {
    let Hashed { work, out: encoded } = h;
    let topics = &sh.cfg.kafka.topics;
    let mut parts: Vec<(i32, u64, Vec<TxMessage>)> = Vec::new();
    for (item, enc) in work.items.iter().zip(encoded) {
        let mut headers = source_headers(&topics.shares, item.partition, item.offset);
        let mut counts = StatusCounts::default();
        let out = match &item.dead {
            Some((payload, error)) => {
                headers = headers.insert(Header {
                    key: H_ERROR,
                    value: Some(error),
                });
                vec![(topics.dead_letter.clone(), payload.clone())]
            }
            None => {
                counts = enc.counts;
                enc.messages(topics)
            }
        };
        let msg = TxMessage {
            offset: item.offset,
            key: item.key.clone(),
            headers,
            out,
            counts,
        };
        match parts
            .iter_mut()
            .find(|x| x.0 == item.partition && x.1 == item.generation)
        {
            Some(x) => x.2.push(msg),
            None => parts.push((item.partition, item.generation, vec![msg])),
        }
    }
    sh.metrics.batches.inc();
    sh.metrics.batch_shares.observe(work.shares as f64);
    let hold = Arc::new(BatchHold {
        work,
        metrics: sh.metrics.clone(),
    });
    for (partition, generation, messages) in parts {
        let job = TxJob {
            partition,
            generation,
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
/// After a failed transaction the worker aborts it and asks the gatherer to rewind the
/// partition to the last committed offset; jobs of the aborted generation that are already
/// on their way are dropped. A fenced producer stops the partition on this node.
fn transaction_worker(sh: &Arc<Shared>, partition: i32, rx: std::sync::mpsc::Receiver<TxJob>) {
    let Some(tx) = sh.tx.clone() else { return };
    // The generation whose transaction failed: its remaining jobs are dropped.
    let mut dead: Option<u64> = None;
    // (generation, next offset to read after the last commit): where to rewind to.
    let mut committed: Option<(u64, i64)> = None;
    for job in rx {
        if sh.abort.load(Ordering::Relaxed) {
            // Shutdown ran out of time: an open transaction is aborted by the next owner.
            return;
        }
        let g = job.generation;
        let current = sh
            .tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .generation(partition);
        if g != current || dead == Some(g) || job.messages.is_empty() {
            continue;
        }
        let first = job.messages[0].offset;
        let rewind_to = match committed {
            Some((cg, o)) if cg == g => o,
            _ => first,
        };
        let producer = match tx.get_or_gain(partition, &sh.abort) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(partition, "{e:#}; the partition is validated again");
                dead = Some(g);
                let _ = sh.ctl.send(Ctl::Rewind {
                    partition,
                    generation: g,
                    offset: rewind_to,
                });
                continue;
            }
        };
        match write_transaction(sh, &producer, &job) {
            Ok(()) => {
                let last = job.messages[job.messages.len() - 1].offset;
                committed = Some((g, last + 1));
                for m in &job.messages {
                    for (s, n) in Status::ALL.iter().zip(m.counts) {
                        if n > 0 {
                            sh.metrics.shares.with_label_values(&[s.as_str()]).inc_by(n);
                        }
                    }
                    sh.complete(partition, g, m.offset);
                }
            }
            Err(e) if classify(&e) == TxnFailure::Fatal => {
                tracing::error!(
                    partition,
                    "transactional producer fenced or failed ({e}); another node owns the \
                     partition now, it is stopped here"
                );
                dead = Some(g);
                tx.forget(partition, &producer);
                let _ = sh.ctl.send(Ctl::Fenced { partition });
            }
            Err(e) => {
                tracing::warn!(
                    partition,
                    "transaction aborted ({e}); validating again from offset {rewind_to}"
                );
                sh.metrics.delivery_retries.inc();
                if let Err(ae) = producer.abort_transaction(TXN_TIMEOUT) {
                    tracing::warn!(partition, "abort_transaction: {ae}");
                    if classify(&ae) == TxnFailure::Fatal {
                        tx.forget(partition, &producer);
                    }
                }
                dead = Some(g);
                let _ = sh.ctl.send(Ctl::Rewind {
                    partition,
                    generation: g,
                    offset: rewind_to,
                });
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
        for (topic, payload) in &m.out {
            loop {
                let mut rec = FutureRecord::<[u8], [u8]>::to(topic)
                    .payload(payload)
                    .headers(m.headers.clone());
                if let Some(k) = &m.key {
                    rec = rec.key(k);
                }
                match producer.send_result(rec) {
                    // The delivery is checked by commit_transaction, which fails if any
                    // message of the transaction failed.
                    Ok(_) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        }
    }
    let last = job.messages[job.messages.len() - 1].offset;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(
        &sh.cfg.kafka.topics.shares,
        job.partition,
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
                    partition = job.partition,
                    "commit_transaction: {e}; retrying"
                );
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{encode_outputs, Item, Lanes, OffsetTracker, Status, Work};
    use crate::model::{Batch, Verdict};
    use crate::wire::binary::decode_verdicts;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    use tokio::sync::Semaphore;

    fn item(t: &mut OffsetTracker, partition: i32, offset: i64, shares: usize) -> Item {
        Item {
            partition,
            offset,
            generation: t.register(partition, offset),
            key: None,
            ts: 0,
            records: vec![bytemuck::Zeroable::zeroed(); shares],
            dead: None,
        }
    }

    fn work(items: Vec<Item>, sem: &Arc<Semaphore>, m: &crate::metrics::Metrics) -> Work {
        Work {
            shares: items.iter().map(|i| i.records.len()).sum(),
            items,
            fetched: Instant::now(),
            jobs_ticket: 7,
            _permit: Arc::new(sem.clone().try_acquire_owned().unwrap()),
            _inflight: Arc::new(m.inflight_guard()),
        }
    }

    /// A gathered batch is split by lane, each partition always in the same lane and new
    /// partitions in the least loaded one; items keep their order within a lane; the parts
    /// share the batch's permit, which is released with the last of them. Partitions taken
    /// away no longer count, and one given back may move.
    #[test]
    fn lanes_split_batches_by_partition_and_share_the_permit() {
        let metrics = crate::metrics::Metrics::new();
        let sem = Arc::new(Semaphore::new(1));
        let tracker = Mutex::new(OffsetTracker::new());
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| std::sync::mpsc::channel()).unzip();
        let mut lanes = Lanes {
            senders: txs,
            of: HashMap::new(),
        };
        // Partitions as a consumer group might give them to one node: all ≡ 0 mod 3.
        let items = {
            let t = &mut tracker.lock().unwrap();
            vec![
                item(t, 0, 10, 2),
                item(t, 3, 20, 1),
                item(t, 0, 11, 3),
                item(t, 6, 30, 4),
                item(t, 9, 40, 5),
                item(t, 3, 21, 1),
            ]
        };
        assert!(lanes.send(work(items, &sem, &metrics), &tracker));
        let parts: Vec<Vec<Work>> = rxs.iter().map(|rx| rx.try_iter().collect()).collect();
        let seen = |l: usize| -> Vec<(i32, i64)> {
            parts[l]
                .iter()
                .flat_map(|w| w.items.iter().map(|i| (i.partition, i.offset)))
                .collect()
        };
        assert_eq!(seen(0), [(0, 10), (0, 11), (9, 40)]);
        assert_eq!(seen(1), [(3, 20), (3, 21)]);
        assert_eq!(seen(2), [(6, 30)]);
        let shares: Vec<usize> = parts.iter().map(|p| p[0].shares).collect();
        assert_eq!(shares, [10, 2, 4]);
        assert!(parts.iter().all(|p| p.len() == 1 && p[0].jobs_ticket == 7));
        // The batch holds its permit until every part is done.
        let mut parts: Vec<Work> = parts.into_iter().flatten().collect();
        while let Some(w) = parts.pop() {
            assert_eq!(sem.available_permits(), 0);
            drop(w);
        }
        assert_eq!(sem.available_permits(), 1);
        // A partition keeps its lane in later batches.
        let items = vec![item(&mut tracker.lock().unwrap(), 3, 22, 1)];
        assert!(lanes.send(work(items, &sem, &metrics), &tracker));
        assert_eq!(rxs[1].try_iter().count(), 1);
        // Partitions 3 and 6 are taken away, and 3 is given back: lanes 1 and 2 hold nothing
        // now, so the new partition 12 goes to lane 1 and 3, given back, to lane 2.
        {
            let t = &mut tracker.lock().unwrap();
            t.revoke(3);
            t.revoke(6);
        }
        let items = {
            let t = &mut tracker.lock().unwrap();
            vec![item(t, 12, 50, 1), item(t, 3, 23, 1), item(t, 0, 12, 1)]
        };
        assert!(lanes.send(work(items, &sem, &metrics), &tracker));
        let got: Vec<Vec<i32>> = rxs
            .iter()
            .map(|rx| {
                rx.try_iter()
                    .flat_map(|w| w.items.into_iter().map(|i| i.partition))
                    .collect()
            })
            .collect();
        assert_eq!(got, [vec![0], vec![12], vec![3]]);
    }

    /// Each item gets the verdicts of its own records, in order, including items without
    /// records; a block also gets a block message with its header; the counts are per item.
    #[test]
    fn outputs_follow_the_items_records() {
        let mut batch = Batch::new();
        let mut block = Verdict::rejected(3, Status::Block);
        block.header = Some(Box::new([9; 80]));
        let verdicts = [
            Verdict::rejected(1, Status::Duplicate),
            Verdict::rejected(2, Status::Stale),
            block,
            Verdict::rejected(4, Status::UnknownJob),
        ];
        for v in &verdicts {
            batch.push_verdict(v.clone());
        }
        let out = encode_outputs(&mut batch, &[], &[0, 2, 0, 2, 0]);
        assert_eq!(out.len(), 5);
        let ids = |m: &[u8]| -> Vec<Option<u64>> {
            decode_verdicts(m).unwrap().iter().map(|v| v.id).collect()
        };
        assert!(ids(&out[0].verdicts).is_empty());
        assert_eq!(ids(&out[1].verdicts), [Some(1), Some(2)]);
        assert!(ids(&out[2].verdicts).is_empty());
        assert_eq!(ids(&out[3].verdicts), [Some(3), Some(4)]);
        assert!(ids(&out[4].verdicts).is_empty());
        assert!(out[1].blocks.is_empty());
        assert_eq!(out[3].blocks.len(), 1);
        let b = decode_verdicts(&out[3].blocks[0]).unwrap();
        assert_eq!(b[0].header.as_deref(), Some(&[9; 80]));
        assert_eq!(out[1].counts[Status::Duplicate as usize], 1);
        assert_eq!(out[1].counts[Status::Stale as usize], 1);
        assert_eq!(out[3].counts[Status::Block as usize], 1);
        assert_eq!(out[3].counts.iter().sum::<u64>(), 2);
        assert!(batch.is_empty());
    }
}
