//! The job log: one reader of the whole jobs topic, shared by every partition's validator,
//! and the end-offset tickets that let a batch wait until the jobs published before it are
//! in.

use super::clients::{jobs_client, Shared};
use super::deliver::dead_letter::JobDeadLetters;
use crate::kafka::now_ms;
use crate::kafka::ReaderContext;
use crate::metrics::Metrics;
use crate::model::future::FutureJobs;
use crate::model::job::JobError;
use crate::model::JobCtx;
use crate::wire::binary::decode_job;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::Offset;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The jobs read so far.
#[derive(Default)]
pub struct JobState {
    /// Absolute index of `jobs[0]`: validators remember how far they applied the log.
    pub base: u64,
    /// Jobs with their publish timestamps, in topic order; trimmed after job_ttl_s.
    /// Built once here and shared by every partition's validator.
    pub jobs: VecDeque<(Arc<JobCtx>, i64)>,
    /// Next offset to read, per jobs partition.
    position: HashMap<i32, i64>,
    /// Bytes the jobs hold (coinbase parts, merkle branches, ids).
    pub bytes: usize,
}

/// What the job log keeps.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Jobs older than this before the newest are expired in every validator.
    pub ttl_ms: i64,
    /// A validator keeps at most this many live jobs (`validation.max_live_jobs` and
    /// `max_jobs_ahead`: a new one, started behind the newest jobs, needs no more).
    pub max_jobs: usize,
    /// `kafka.max_job_log_bytes`: a flood of large jobs holds at most this much.
    pub max_bytes: usize,
}

/// The memory a job holds beyond its fixed part.
fn job_bytes(j: &JobCtx) -> usize {
    j.job.coinb1.len() + j.job.coinb2.len() + 32 * j.job.merkle_branch.len() + j.job.job_id.len()
}

impl JobState {
    /// Appends a job, then drops the oldest jobs while the log holds jobs older than
    /// `ttl_ms` before the newest, more than `max_jobs`, or more than `max_bytes`: a new
    /// validator needs none of them (they are expired, or beyond what it keeps live).
    pub fn push(&mut self, job: Arc<JobCtx>, ts: i64, limits: LogLimits) {
        self.bytes += job_bytes(&job);
        self.jobs.push_back((job, ts));
        let newest = self.jobs.back().map_or(ts, |x| x.1);
        while self.jobs.len() > 1
            && (self
                .jobs
                .front()
                .is_some_and(|f| f.1 + limits.ttl_ms < newest)
                || self.jobs.len() > limits.max_jobs
                || self.bytes > limits.max_bytes)
        {
            if let Some((j, _)) = self.jobs.pop_front() {
                self.bytes -= job_bytes(&j);
            }
            self.base += 1;
        }
    }

    /// The absolute index one past the last job.
    pub fn end(&self) -> u64 {
        self.base + self.jobs.len() as u64
    }

    /// Whether the reader has read every jobs partition up to `highs`.
    fn reached(&self, highs: &[(i32, i64)]) -> bool {
        highs
            .iter()
            .all(|(p, h)| self.position.get(p).copied().unwrap_or(0) >= *h)
    }
}

/// A jobs reader that has read nothing for this long while the last end-offset query found
/// the jobs topic past its position gets a new client. Every batch waits on this reader, and
/// librdkafka's hand-assigned consumers have been seen to stop fetching for good after a
/// broker restart (confluentinc/librdkafka#5153): the node then stopped validating.
const READER_STALL: Duration = Duration::from_secs(10);

/// The running jobs reader: the log, and its two threads (the reader, and the end-offset
/// queries).
pub struct JobsReader {
    pub log: Arc<JobLog>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl JobsReader {
    /// Starts reading every partition of the jobs topic from the beginning (no group).
    pub fn start(sh: &Shared) -> anyhow::Result<JobsReader> {
        let k = &sh.cfg.kafka;
        let consumer = jobs_client(k, "sharecheck-jobs", "jobs reader")?;
        let partitions = tokio::task::block_in_place(|| {
            crate::kafka::partitions_of(&consumer, &k.topics.jobs, Duration::from_secs(30))
        })?;
        let dead = JobDeadLetters {
            producer: sh.producer.clone(),
            topic: k.topics.dead_letter.clone(),
            limit: super::deliver::dead_letter::size_limit(k),
            runtime: tokio::runtime::Handle::current(),
        };
        let ends = jobs_client(k, "sharecheck-jobs-end", "jobs end-offset client")?;
        let log = Arc::new(JobLog::new(ends, &k.topics.jobs, partitions, dead));
        log.assign(&consumer)?;
        let stop = Arc::new(AtomicBool::new(false));
        let limits = LogLimits {
            ttl_ms: (sh.cfg.validation.job_ttl_s as i64).saturating_mul(1000),
            max_jobs: sh
                .cfg
                .validation
                .max_live_jobs
                .saturating_add(sh.cfg.validation.max_jobs_ahead),
            max_bytes: sh.cfg.kafka.max_job_log_bytes,
        };
        let reader = {
            let (log, stop, m) = (log.clone(), stop.clone(), sh.metrics.clone());
            let k = k.clone();
            let rebuild = move || jobs_client(&k, "sharecheck-jobs", "jobs reader");
            std::thread::Builder::new()
                .name("jobs-reader".into())
                .spawn(move || log.read(consumer, &rebuild, &stop, limits, &m))?
        };
        let ends = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::Builder::new()
                .name("jobs-ends".into())
                .spawn(move || log.query_ends(&stop))?
        };
        Ok(JobsReader {
            log,
            stop,
            threads: vec![reader, ends],
        })
    }

    /// Stops both threads and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A job message as the validators take it: a live job's context, None for a future job
/// (kept in `future` until its activation), or why it cannot be used.
fn job_of(payload: &[u8], future: &mut FutureJobs) -> Result<Option<Arc<JobCtx>>, String> {
    let j = decode_job(payload).map_err(|e| e.to_string())?;
    let id = j.job_id.clone();
    let unusable = |e: JobError| format!("job {id:?} unusable: {e}");
    match future.resolve(j).map_err(unusable)? {
        Some(j) => JobCtx::new(j).map(|c| Some(Arc::new(c))).map_err(unusable),
        None => Ok(None),
    }
}

pub struct JobLog {
    state: Mutex<JobState>,
    changed: Condvar,
    /// A second client that only asks for end offsets. The broker answers the requests of one
    /// connection in order, so asking through the reader's own connection would wait behind
    /// its long-polling fetch (up to fetch.wait.max.ms, 500 ms by default).
    ends: BaseConsumer<ReaderContext>,
    topic: String,
    partitions: Vec<i32>,
    dead: JobDeadLetters,
    tickets: EndsTickets,
}

impl JobLog {
    /// An empty log of every partition of `topic`.
    fn new(
        ends: BaseConsumer<ReaderContext>,
        topic: &str,
        partitions: Vec<i32>,
        dead: JobDeadLetters,
    ) -> JobLog {
        JobLog {
            state: Mutex::new(JobState::default()),
            changed: Condvar::new(),
            ends,
            topic: topic.to_string(),
            partitions,
            dead,
            tickets: EndsTickets::default(),
        }
    }

    /// Assigns every partition of the topic to `consumer`, each from where the log has read
    /// it to (the beginning at first).
    fn assign(&self, consumer: &BaseConsumer<ReaderContext>) -> anyhow::Result<()> {
        let mut tpl = rdkafka::TopicPartitionList::new();
        let st = self.state();
        for p in &self.partitions {
            let at = st
                .position
                .get(p)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            tpl.add_partition_offset(&self.topic, *p, at)?;
        }
        consumer.assign(&tpl)?;
        Ok(())
    }

    /// Whether an end-offset query has been answered and the log has read up to what the
    /// last one found (for readiness; [`JobLog::request_ends`] keeps it fresh).
    pub fn caught_up(&self) -> bool {
        let (answered, highs) = {
            let t = self.tickets.lock();
            (t.answered, t.highs.clone())
        };
        answered > 0 && self.state().reached(&highs)
    }

    /// Whether the last end-offset query found the topic past what the log has read.
    fn behind(&self) -> bool {
        let highs = self.tickets.lock().highs.clone();
        !self.state().reached(&highs)
    }

    /// After [`READER_STALL`] without a message while [`JobLog::behind`]: a new client from
    /// `rebuild`, assigned where the log stands, in place of `consumer`.
    fn unstick(
        &self,
        consumer: &mut BaseConsumer<ReaderContext>,
        rebuild: &dyn Fn() -> anyhow::Result<BaseConsumer<ReaderContext>>,
        moved: &mut Instant,
        metrics: &Metrics,
    ) {
        if moved.elapsed() < READER_STALL || !self.behind() {
            return;
        }
        *moved = Instant::now();
        let fresh = rebuild().and_then(|c| self.assign(&c).map(|()| c));
        match fresh {
            Ok(c) => {
                tracing::warn!(
                    "jobs reader: nothing read for {} s while the jobs topic is ahead; \
                     reading on with a new client",
                    READER_STALL.as_secs()
                );
                *consumer = c;
                metrics.jobs_reader_rebuilds.inc();
            }
            Err(e) => tracing::warn!("jobs reader: stuck, and cannot rebuild its client: {e:#}"),
        }
    }

    /// The jobs read so far (keep the lock short: the reader and every lane use it).
    pub fn state(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the jobs topic with `consumer` until `stop`; a consumer that stops fetching is
    /// replaced by one from `rebuild`.
    fn read(
        &self,
        mut consumer: BaseConsumer<ReaderContext>,
        rebuild: &dyn Fn() -> anyhow::Result<BaseConsumer<ReaderContext>>,
        stop: &AtomicBool,
        limits: LogLimits,
        metrics: &Metrics,
    ) {
        let mut last_err = Instant::now() - Duration::from_secs(60);
        let mut moved = Instant::now();
        // Future jobs wait here for their activation; the log holds live jobs only.
        let mut future = FutureJobs::new(limits.max_jobs);
        while !stop.load(Ordering::Relaxed) {
            self.unstick(&mut consumer, rebuild, &mut moved, metrics);
            let Some(r) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            match r {
                Ok(m) => {
                    moved = Instant::now();
                    let ts = m.timestamp().to_millis().unwrap_or_else(now_ms);
                    let job = match job_of(m.payload().unwrap_or(&[]), &mut future) {
                        Ok(j) => j,
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
                    let mut st = self.state();
                    if let Some(j) = job {
                        st.push(j, ts, limits);
                        metrics.jobs_received.inc();
                        if ts as f64 / 1000.0 > metrics.last_job_timestamp.get() {
                            metrics.last_job_timestamp.set(ts as f64 / 1000.0);
                        }
                        metrics.jobs.set(st.jobs.len() as i64);
                        metrics.job_log_bytes.set(st.bytes as i64);
                    }
                    st.position.insert(m.partition(), m.offset() + 1);
                    self.changed.notify_all();
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    moved = Instant::now();
                    // At the end: whatever the offsets (compaction or transaction markers can
                    // leave gaps), the reader is caught up to the current position.
                    if let Ok(pos) = consumer.position() {
                        let mut st = self.state();
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
    pub fn request_ends(&self) -> u64 {
        self.tickets.request()
    }

    /// The end-offset thread: whenever a ticket is newer than the last query, queries the
    /// end offsets of every jobs partition and publishes them. Until `stop`.
    fn query_ends(&self, stop: &AtomicBool) {
        let mut warned = false;
        while let Some(ticket) = self.tickets.next_query(stop) {
            let r = crate::kafka::end_offsets(
                &self.ends,
                &self.topic,
                &self.partitions,
                Duration::from_secs(5),
            );
            match r {
                Ok(highs) => {
                    if warned {
                        tracing::info!("end of the jobs topic readable again");
                        warned = false;
                    }
                    self.tickets.answer(ticket, highs);
                }
                Err(err) => {
                    if !warned {
                        tracing::warn!("cannot read the end of the jobs topic ({err:#}); retrying");
                        warned = true;
                    }
                    // Ask again after a pause; the waiting batches keep their tickets.
                    self.tickets.failed(ticket);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Blocks until the reader has caught up with the jobs topic's end offsets as a query
    /// started after `ticket` was handed out found them. Returns false if `abort` was raised
    /// first.
    pub fn catch_up(&self, ticket: u64, abort: &AtomicBool) -> bool {
        let Some(highs) = self.tickets.wait(ticket, abort) else {
            return false;
        };
        let mut st = self.state();
        loop {
            if st.reached(&highs) {
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

/// The end-offset queries of the jobs topic. A batch asks for one when it is dispatched and
/// waits, in the prepare stage, for the answer of a query that *started* after it asked; one
/// query serves every batch that asked before it started. So the round trip overlaps with
/// the preparation of the batch before, and batches are not serialised on it.
#[derive(Default)]
struct EndsTickets {
    state: Mutex<Tickets>,
    changed: Condvar,
}

#[derive(Default)]
struct Tickets {
    /// Tickets handed out: the ticket of the latest request.
    requested: u64,
    /// The ticket the query under way (or the last one) started with.
    started: u64,
    /// The ticket the last answered query started with, and its end offsets.
    answered: u64,
    highs: Vec<(i32, i64)>,
}

impl EndsTickets {
    fn lock(&self) -> MutexGuard<'_, Tickets> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request(&self) -> u64 {
        let mut t = self.lock();
        t.requested += 1;
        self.changed.notify_all();
        t.requested
    }

    /// For the query thread: waits until a ticket is newer than the last query started and
    /// returns the ticket the next query starts with; None once `stop` is raised.
    fn next_query(&self, stop: &AtomicBool) -> Option<u64> {
        let mut t = self.lock();
        while t.requested == t.started && !stop.load(Ordering::Relaxed) {
            t = self
                .changed
                .wait_timeout(t, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        t.started = t.requested;
        Some(t.started)
    }

    fn answer(&self, ticket: u64, highs: Vec<(i32, i64)>) {
        let mut t = self.lock();
        t.answered = ticket;
        t.highs = highs;
        self.changed.notify_all();
    }

    /// The query started with `ticket` failed: the next one asks again for it.
    fn failed(&self, ticket: u64) {
        self.lock().started = ticket - 1;
    }

    /// The end offsets of the first answered query that started at or after `ticket`; None
    /// if `abort` was raised first.
    fn wait(&self, ticket: u64, abort: &AtomicBool) -> Option<Vec<(i32, i64)>> {
        let mut t = self.lock();
        while t.answered < ticket {
            if abort.load(Ordering::Relaxed) {
                return None;
            }
            t = self
                .changed
                .wait_timeout(t, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Some(t.highs.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Job;

    /// One query serves every ticket handed out before it started; a ticket handed out
    /// while it runs waits for the next one, and a failed query is asked again.
    #[test]
    fn one_query_answers_every_earlier_ticket() {
        let t = EndsTickets::default();
        let stop = AtomicBool::new(false);
        let (a, b) = (t.request(), t.request());
        let q = t.next_query(&stop).unwrap();
        assert_eq!(q, b);
        let c = t.request();
        t.answer(q, vec![(0, 5)]);
        assert_eq!(t.wait(a, &stop), Some(vec![(0, 5)]));
        assert_eq!(t.wait(b, &stop), Some(vec![(0, 5)]));
        // c asked after the query started: not answered by it.
        assert_eq!(t.wait(c, &AtomicBool::new(true)), None);
        let q = t.next_query(&stop).unwrap();
        assert_eq!(q, c);
        t.failed(q);
        let q = t.next_query(&stop).unwrap();
        assert_eq!(q, c, "a failed query is asked again");
        t.answer(q, vec![(0, 9)]);
        assert_eq!(t.wait(c, &stop), Some(vec![(0, 9)]));
        assert_eq!(t.next_query(&AtomicBool::new(true)), None);
    }

    fn job(id: &str) -> Arc<JobCtx> {
        Arc::new(
            JobCtx::new(Job {
                job_id: id.into(),
                prevhash: [0; 32],
                coinb1: vec![1; 40],
                coinb2: vec![2; 40],
                merkle_branch: vec![],
                version: 0x2000_0000,
                nbits: 0x1d00_ffff,
                ntime: 1000,
                clean_jobs: false,
                version_mask: 0,
                extranonce_size: None,
                merkle_root: None,
                step: Default::default(),
            })
            .unwrap(),
        )
    }

    const LOOSE: LogLimits = LogLimits {
        ttl_ms: 500,
        max_jobs: 1000,
        max_bytes: 1 << 30,
    };

    /// 100 000 distinct jobs (a flood on the jobs topic) leave at most max_jobs in the log,
    /// and large ones at most max_bytes; the newest is always kept.
    #[test]
    fn the_log_is_bounded_by_count_and_bytes() {
        let mut s = JobState::default();
        let limits = LogLimits {
            ttl_ms: i64::MAX / 2,
            max_jobs: 1024,
            max_bytes: 1 << 20,
        };
        for i in 0..100_000 {
            s.push(job(&format!("{i}")), 1000, limits);
        }
        assert_eq!(s.jobs.len(), 1024);
        assert_eq!(s.end(), 100_000);
        let big = Arc::new(
            JobCtx::new(Job {
                coinb1: vec![0; 16 * 1024],
                ..job("big").job.clone()
            })
            .unwrap(),
        );
        let mut s = JobState::default();
        let limits = LogLimits {
            max_bytes: 50_000,
            ..limits
        };
        for _ in 0..10 {
            s.push(big.clone(), 1000, limits);
        }
        assert!(s.bytes <= 50_000, "{} bytes", s.bytes);
        assert_eq!(s.jobs.len(), 3);
        assert_eq!(s.end(), 10);
    }

    /// Jobs older than the ttl before the newest go, and the base index counts them.
    #[test]
    fn the_log_keeps_jobs_within_the_ttl_of_the_newest() {
        let mut s = JobState::default();
        s.push(job("a"), 1000, LOOSE);
        s.push(job("b"), 1400, LOOSE);
        assert_eq!((s.base, s.jobs.len(), s.end()), (0, 2, 2));
        s.push(job("c"), 1600, LOOSE);
        assert_eq!((s.base, s.jobs.len(), s.end()), (1, 2, 3));
        assert_eq!(s.jobs[0].1, 1400);
        assert_eq!(s.bytes, 2 * (40 + 40 + 1));
        s.position.insert(0, 7);
        assert!(s.reached(&[(0, 7)]) && !s.reached(&[(0, 8)]) && !s.reached(&[(1, 1)]));
    }
}

#[cfg(test)]
#[path = "jobs_stuck_test.rs"]
mod stuck_test;
