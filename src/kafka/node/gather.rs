//! Gathering: fetched share messages become [`Item`]s, collected into a [`Work`] batch of up
//! to `backend.batch.max_shares` shares or `max_wait_ms`, dispatched once an in-flight
//! permit is free.

use super::clients::Shared;
use super::deliver::dead_letter::{self, DeadLetter};
use super::jobs::JobLog;
use super::lanes::Lanes;
use super::ownership::Epoch;
use super::NodeSummary;
use crate::kafka::now_ms;
use crate::kafka::reply::{Route, H_REPLY_TO};
use crate::wire::binary::{decode_shares, ShareRecord};
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::TopicPartitionList;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// How long the gatherer waits for an in-flight slot before it pauses the partitions.
const PAUSE_AFTER: Duration = Duration::from_secs(2);
/// A batch is due once its dead letters hold this many bytes: what a batch holds stays
/// bounded when bad messages arrive without shares.
const MAX_DEAD_LETTER_BYTES: usize = 8 << 20;

/// One share message.
pub struct Item {
    pub epoch: Epoch,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub ts: i64,
    pub records: Vec<ShareRecord>,
    /// A message that is not a share batch: its dead letter, delivered in its place.
    pub dead: Option<DeadLetter>,
    /// Where the message's `reply_to` header sends its verdicts (checked by the prepare
    /// stage), or why the node will not send them there; None: the verdicts topic.
    pub reply: Option<Result<Route, String>>,
}

/// A batch of share messages on its way; holds an in-flight permit until acknowledged.
///
/// With several lanes a gathered batch is split into one `Work` per lane; the parts share
/// the batch's permit and in-flight count, which are released with the last of them.
pub struct Work {
    pub items: Vec<Item>,
    pub shares: usize,
    pub fetched: Instant,
    /// The end-offset query of the jobs topic asked for when the batch was dispatched.
    pub jobs_ticket: u64,
    pub permit: Arc<OwnedSemaphorePermit>,
    pub inflight: Arc<crate::metrics::InflightGuard>,
}

/// Whether the node's loop goes on.
#[derive(PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// The batch being gathered.
pub struct Gatherer {
    pending: Vec<Item>,
    pending_shares: usize,
    /// Bytes of the dead letters in the batch (each is at most the producer's message size).
    pending_dead_bytes: usize,
    first_at: Instant,
    max_shares: usize,
    max_wait: Duration,
    /// Permits for batches between dispatch and their outputs reaching the producer.
    sem: Arc<Semaphore>,
    /// The most a dead letter holds ([`dead_letter::size_limit`]).
    dead_letter_limit: usize,
    pub summary: NodeSummary,
}

impl Gatherer {
    pub fn new(sh: &Shared) -> Gatherer {
        let b = &sh.cfg.backend;
        Gatherer {
            pending: Vec::new(),
            pending_shares: 0,
            pending_dead_bytes: 0,
            first_at: Instant::now(),
            max_shares: b.batch.max_shares,
            max_wait: Duration::from_millis(b.batch.max_wait_ms),
            sem: Arc::new(Semaphore::new(b.inflight.max(1) * b.lanes())),
            dead_letter_limit: dead_letter::size_limit(&sh.cfg.kafka),
            summary: NodeSummary::default(),
        }
    }

    /// When the partial batch must go even if not full; None while nothing is gathered.
    pub fn flush_at(&self) -> Option<tokio::time::Instant> {
        (!self.pending.is_empty())
            .then(|| tokio::time::Instant::from_std(self.first_at + self.max_wait))
    }

    /// Whether the batch is due: full, or its first message has waited long enough. Dead
    /// letters count by their bytes, so that a flood of bad messages (which hold no shares)
    /// cannot gather an unbounded batch.
    pub fn due(&self) -> bool {
        !self.pending.is_empty()
            && (self.pending_shares >= self.max_shares
                || self.pending_dead_bytes >= MAX_DEAD_LETTER_BYTES
                || self.first_at.elapsed() >= self.max_wait)
    }

    /// Takes a fetched message into the batch.
    pub fn take(&mut self, sh: &Shared, m: &BorrowedMessage<'_>) {
        self.summary.messages += 1;
        let item = take_message(sh, m, self.dead_letter_limit);
        if let Some(d) = &item.dead {
            self.summary.dead_letters += 1;
            self.pending_dead_bytes += d.payload.len();
        }
        if self.pending.is_empty() {
            self.first_at = Instant::now();
        }
        self.pending_shares += item.records.len();
        self.summary.shares += item.records.len() as u64;
        self.pending.push(item);
    }

    /// Hands the gathered batch to the lanes once the in-flight limit allows. Meanwhile
    /// librdkafka keeps fetching into its bounded queue, and the next batch takes what
    /// arrived. Only a long stall (the backend or the broker away) pauses the partitions: a
    /// pause drops librdkafka's prefetched messages and its fetcher restarts with a backoff,
    /// which made every routine wait for a permit cost about half a second of latency.
    pub async fn dispatch(
        &mut self,
        sh: &Shared,
        lanes: &mut Lanes,
        jobs: &JobLog,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Flow {
        let permit = match self.sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let quick = tokio::select! {
                    p = self.sem.clone().acquire_owned() => p.ok(),
                    _ = tokio::time::sleep(PAUSE_AFTER) => None,
                    _ = shutdown.changed() => return Flow::Stop,
                };
                match quick {
                    Some(p) => p,
                    None => {
                        // Only the partitions being fetched: a halted one stays paused.
                        let fetched = partitions(sh, &sh.ownership.fetchable());
                        let _ = sh.consumer.pause(&fetched);
                        let p = tokio::select! {
                            p = self.sem.clone().acquire_owned() => p.ok(),
                            _ = shutdown.changed() => None,
                        };
                        let _ = sh
                            .consumer
                            .resume(&partitions(sh, &sh.ownership.fetchable()));
                        match p {
                            Some(p) => p,
                            None => return Flow::Stop,
                        }
                    }
                }
            }
        };
        self.send(permit, sh, lanes, jobs)
    }

    fn send(
        &mut self,
        permit: OwnedSemaphorePermit,
        sh: &Shared,
        lanes: &mut Lanes,
        jobs: &JobLog,
    ) -> Flow {
        self.pending_dead_bytes = 0;
        let work = Work {
            items: std::mem::take(&mut self.pending),
            shares: std::mem::take(&mut self.pending_shares),
            fetched: self.first_at,
            jobs_ticket: jobs.request_ends(),
            permit: Arc::new(permit),
            inflight: Arc::new(sh.metrics.inflight_guard()),
        };
        match lanes.send(work, &sh.ownership) {
            true => Flow::Continue,
            false => Flow::Stop,
        }
    }

    /// At shutdown: what is already fetched is validated too if a slot frees up in time.
    pub async fn finish(&mut self, sh: &Shared, lanes: &mut Lanes, jobs: &JobLog) {
        if !self.pending.is_empty() {
            if let Ok(Ok(permit)) =
                tokio::time::timeout(Duration::from_secs(2), self.sem.clone().acquire_owned()).await
            {
                self.send(permit, sh, lanes, jobs);
            }
        }
    }
}

/// `parts` of the shares topic.
fn partitions(sh: &Shared, parts: &[i32]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(parts.len());
    for &p in parts {
        tpl.add_partition(&sh.cfg.kafka.topics.shares, p);
    }
    tpl
}

/// Turns a fetched message into a pipeline item: its share records, or the dead letter of
/// a message that is not a share batch.
fn take_message(sh: &Shared, m: &BorrowedMessage<'_>, dead_letter_limit: usize) -> Item {
    let (p, o) = (m.partition(), m.offset());
    let epoch = sh.ownership.enter(p, o);
    let payload = m.payload().unwrap_or(&[]);
    let ts = m.timestamp().to_millis().unwrap_or_else(now_ms);
    let (records, dead) = match decode_shares(payload) {
        Ok(recs) => (recs.to_vec(), None),
        Err(e) => {
            tracing::warn!(
                partition = p,
                offset = o,
                bytes = payload.len(),
                "undecodable message to the dead-letter topic: {e}"
            );
            sh.metrics.dead_letters.inc();
            let d = DeadLetter::of(m, &e.to_string(), dead_letter_limit);
            if d.is_cut() {
                sh.metrics.dead_letters_cut.inc();
            }
            (Vec::new(), Some(d))
        }
    };
    Item {
        epoch,
        offset: o,
        key: m.key().map(<[u8]>::to_vec),
        ts,
        records,
        dead,
        reply: reply_header(m),
    }
}

/// The `reply_to` header, read (not yet checked against the config and the broker).
fn reply_header(m: &BorrowedMessage<'_>) -> Option<Result<Route, String>> {
    use rdkafka::message::Headers;
    let h = m.headers()?;
    let v = h.iter().find(|h| h.key == H_REPLY_TO)?;
    Some(Route::parse(v.value.unwrap_or(&[])))
}
