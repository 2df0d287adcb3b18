//! Gathering: fetched share messages become [`Item`]s, collected into a [`Work`] batch of up
//! to `backend.batch.max_shares` shares or `max_wait_ms`, dispatched once an in-flight
//! permit is free.

use super::clients::Shared;
use super::deliver::dead_letter::DeadLetter;
use super::jobs::JobLog;
use super::lanes::Lanes;
use super::ownership::Epoch;
use super::NodeSummary;
use crate::kafka::now_ms;
use crate::wire::binary::{decode_shares, ShareRecord};
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// How long the gatherer waits for an in-flight slot before it pauses the partitions.
const PAUSE_AFTER: Duration = Duration::from_secs(2);

/// One share message.
pub struct Item {
    pub epoch: Epoch,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub ts: i64,
    pub records: Vec<ShareRecord>,
    /// Exactly-once delivery: a message that is not a share batch (its payload and why),
    /// sent to the dead-letter topic in the partition's transaction.
    pub dead: Option<(Vec<u8>, String)>,
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

/// What the gatherer makes of a fetched message.
enum Taken {
    /// A share batch (or, with exactly-once delivery, a dead letter for the partition's
    /// transaction).
    Item(Item),
    /// at_least_once: an undecodable message for the dead-letter topic.
    Dead(DeadLetter),
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
    first_at: Instant,
    max_shares: usize,
    max_wait: Duration,
    /// Permits for batches between dispatch and their outputs reaching the producer.
    sem: Arc<Semaphore>,
    /// at_least_once: dead letters on their way.
    dead: tokio::task::JoinSet<()>,
    pub summary: NodeSummary,
}

impl Gatherer {
    pub fn new(sh: &Shared) -> Gatherer {
        let b = &sh.cfg.backend;
        Gatherer {
            pending: Vec::new(),
            pending_shares: 0,
            first_at: Instant::now(),
            max_shares: b.batch.max_shares,
            max_wait: Duration::from_millis(b.batch.max_wait_ms),
            sem: Arc::new(Semaphore::new(b.inflight.max(1) * b.lanes())),
            dead: tokio::task::JoinSet::new(),
            summary: NodeSummary::default(),
        }
    }

    /// When the partial batch must go even if not full; None while nothing is gathered.
    pub fn flush_at(&self) -> Option<tokio::time::Instant> {
        (!self.pending.is_empty())
            .then(|| tokio::time::Instant::from_std(self.first_at + self.max_wait))
    }

    /// Whether the batch is due: full, or its first message has waited long enough.
    pub fn due(&self) -> bool {
        !self.pending.is_empty()
            && (self.pending_shares >= self.max_shares || self.first_at.elapsed() >= self.max_wait)
    }

    /// Takes a fetched message: into the batch, or on its way to the dead-letter topic.
    pub async fn take(
        &mut self,
        sh: &Arc<Shared>,
        m: &BorrowedMessage<'_>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Flow {
        self.summary.messages += 1;
        match take_message(sh, m) {
            Taken::Item(item) => {
                if item.dead.is_some() {
                    self.summary.dead_letters += 1;
                }
                if self.pending.is_empty() {
                    self.first_at = Instant::now();
                }
                self.pending_shares += item.records.len();
                self.summary.shares += item.records.len() as u64;
                self.pending.push(item);
            }
            Taken::Dead(d) => {
                self.summary.dead_letters += 1;
                // Finished deliveries leave their results in the set until reaped.
                while self.dead.try_join_next().is_some() {}
                let permit = tokio::select! {
                    p = sh.dead_unacked.clone().acquire_owned() => p.ok(),
                    _ = shutdown.changed() => None,
                };
                // Without a permit (shutdown) the message is left uncommitted and read again
                // after the restart.
                let Some(permit) = permit else {
                    return Flow::Stop;
                };
                self.dead.spawn(d.deliver(sh.clone(), permit));
            }
        }
        Flow::Continue
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
                        let assigned = sh.consumer.assignment().ok();
                        if let Some(a) = &assigned {
                            let _ = sh.consumer.pause(a);
                        }
                        let p = tokio::select! {
                            p = self.sem.clone().acquire_owned() => p.ok(),
                            _ = shutdown.changed() => None,
                        };
                        if let Some(a) = &assigned {
                            let _ = sh.consumer.resume(a);
                        }
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

    /// At shutdown: what is already fetched is validated too if a slot frees up in time;
    /// then waits (until `deadline`) for the dead letters on their way.
    pub async fn finish(&mut self, sh: &Shared, lanes: &mut Lanes, jobs: &JobLog) {
        if !self.pending.is_empty() {
            if let Ok(Ok(permit)) =
                tokio::time::timeout(Duration::from_secs(2), self.sem.clone().acquire_owned()).await
            {
                self.send(permit, sh, lanes, jobs);
            }
        }
    }

    /// Waits for the dead letters on their way.
    pub async fn dead_letters_done(&mut self) {
        while self.dead.join_next().await.is_some() {}
    }
}

/// Turns a fetched message into a pipeline item, or into a dead letter.
fn take_message(sh: &Arc<Shared>, m: &BorrowedMessage<'_>) -> Taken {
    let (p, o) = (m.partition(), m.offset());
    let epoch = sh.ownership.enter(p, o);
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
                    epoch,
                    offset: o,
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
        epoch,
        offset: o,
        key,
        ts,
        records,
        dead,
    })
}
