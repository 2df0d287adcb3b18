//! `sharecheck send`: JSON Lines (as read by `verify`) to Kafka. Jobs go to the jobs topic,
//! one message each, acknowledged before any share after them is produced (and the shares
//! after a job are stamped later than it, so that staleness by time sees the file's order).
//! Shares go to the shares topic as binary batches, one per partition, each share in the
//! partition its key ([`key_of`]) gives: the miner session for stratum and SV2 extended
//! shares, the nonce's low byte for header and SV2 standard shares (duplicates are tracked
//! per partition, so every share that could repeat another must land in the same partition).

use super::{now_ms, producer_config};
use crate::config::KafkaConfig;
use crate::model::share::KIND_SV2_STANDARD;
use crate::model::Verdict;
use crate::wire::binary::{encode_job, encode_shares, ShareRecord, KIND_HEADER};
use crate::wire::jsonl;
use bytemuck::Zeroable;
use rdkafka::error::KafkaError;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::BufRead;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub struct SendOptions {
    /// Shares per message (per key).
    pub batch: usize,
    /// Shares per second; 0 = as fast as possible.
    pub rate: f64,
    /// Print progress every this often.
    pub progress: Duration,
}

#[derive(Debug, Default)]
pub struct SendSummary {
    pub jobs: u64,
    pub shares: u64,
    pub messages: u64,
    /// Share lines without a usable id: they cannot travel as records and are skipped.
    pub skipped: u64,
    pub bad_jobs: u64,
    pub seconds: f64,
}

/// The partition key of a share (see [`key_of`]).
pub fn share_key(rec: &ShareRecord) -> Vec<u8> {
    key_of(rec).to_vec()
}

/// The partition key of a share, borrowed from the record. Duplicates are found per
/// partition, so every copy of one proof of work must get the same key:
/// - a stratum share: its session's extranonce1, an SV2 extended share: its channel's
///   extranonce_prefix (a share repeats only on its own session's work);
/// - a header share and an SV2 standard share: the nonce's low byte. A header share and a
///   standard share of the same work are one proof of work, and the one field both records
///   carry alike is the nonce (a header share names no job, a standard share no prevhash);
///   one byte keeps 256 keys, enough to spread them over the partitions while the sender
///   still fills batches.
pub fn key_of(rec: &ShareRecord) -> &[u8] {
    if rec.kind == KIND_HEADER {
        // The nonce: header bytes 76..80, little-endian.
        return &rec.payload[76..77];
    }
    if rec.kind == KIND_SV2_STANDARD {
        // The nonce: payload bytes 4..8, little-endian.
        return &rec.payload[4..5];
    }
    let n = (rec.extranonce1_len as usize).min(32);
    &rec.payload[48..48 + n]
}

/// The partition librdkafka's default (`consistent_random`) partitioner gives `key`: CRC-32
/// (IEEE) of the key modulo the partition count (an empty key too, where librdkafka would
/// pick at random, so that such shares also meet their repeats).
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    (crc32fast::hash(key) % partitions.max(1) as u32) as i32
}

/// A share line that is malformed in JSON still gets its `malformed` verdict through the
/// node: it travels as a record with an invalid kind and its id.
fn malformed_record(v: &Verdict) -> Option<ShareRecord> {
    let id = v.id?;
    let mut r = ShareRecord::zeroed();
    r.id = id.to_le_bytes();
    Some(r)
}

struct Sender {
    producer: FutureProducer,
    /// The shares topic's partition count.
    partitions: i32,
    topic: String,
    /// Share messages handed to the producer, oldest first.
    pending: VecDeque<DeliveryFuture>,
    /// Jobs handed to the producer and not yet acknowledged, oldest first.
    jobs: VecDeque<DeliveryFuture>,
    gate: JobGate,
}

/// Share messages waiting for the jobs before them in the file: a message may be produced
/// once every job produced before it was complete is acknowledged and the clock has passed
/// those jobs' broker timestamps (so that the broker stamps the message later).
#[derive(Default)]
struct JobGate {
    /// Jobs produced so far, and how many of the oldest are acknowledged.
    sent: u64,
    acked: u64,
    /// The latest broker timestamp among acknowledged jobs.
    ts: i64,
    /// (jobs produced before the message was complete, the message), in file order.
    held: VecDeque<(u64, Msg)>,
}

/// A share message: its partition (chosen here, see [`OpenBatches`]), key and payload.
#[derive(Debug, PartialEq)]
struct Msg {
    partition: i32,
    key: Vec<u8>,
    payload: Vec<u8>,
}

impl JobGate {
    /// Whether a message complete now may be produced at once (nothing older is held).
    fn open(&self, now: i64) -> bool {
        self.held.is_empty() && self.acked == self.sent && now > self.ts
    }

    fn hold(&mut self, msg: Msg) {
        self.held.push_back((self.sent, msg));
    }

    fn job_acked(&mut self, ts: i64) {
        self.acked += 1;
        self.ts = self.ts.max(ts);
    }

    /// The oldest held message, once the jobs before it allow it.
    fn next_free(&mut self, now: i64) -> Option<Msg> {
        if now <= self.ts || self.held.front()?.0 > self.acked {
            return None;
        }
        self.held.pop_front().map(|(_, m)| m)
    }
}

/// Share messages held back for unacknowledged jobs before the sender stops reading and waits
/// for the oldest job (bounds the sender's memory when the broker is slow or away).
const MAX_HELD: usize = 4096;

impl Sender {
    /// Enqueues one message; waits (without reordering) while librdkafka's queue is full.
    async fn produce(
        &mut self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        partition: Option<i32>,
    ) -> anyhow::Result<()> {
        loop {
            let mut rec = FutureRecord::to(topic).key(key).payload(payload);
            if let Some(p) = partition {
                rec = rec.partition(p);
            }
            match self.producer.send_result(rec) {
                Ok(f) => {
                    self.pending.push_back(f);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.drain(self.pending.len() / 2).await?;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => anyhow::bail!("cannot produce to {topic}: {e}"),
            }
        }
    }

    /// Waits for the oldest share deliveries until at most `keep` are outstanding.
    async fn drain(&mut self, keep: usize) -> anyhow::Result<()> {
        while self.pending.len() > keep {
            if let Some(f) = self.pending.pop_front() {
                delivered(f.await)?;
            }
        }
        Ok(())
    }

    /// A complete share message: produced now when every job before it is acknowledged
    /// (and the clock has passed their timestamps), held back in order otherwise.
    async fn shares(&mut self, msg: Msg) -> anyhow::Result<()> {
        if self.gate.open(now_ms()) {
            return self.produce_shares(&msg).await;
        }
        self.gate.hold(msg);
        if self.gate.held.len() > MAX_HELD {
            self.wait_oldest_job().await?;
        }
        Ok(())
    }

    /// Takes in the jobs acknowledged so far without waiting, and produces the held share
    /// messages they free.
    async fn poll_jobs(&mut self) -> anyhow::Result<()> {
        let mut cx = Context::from_waker(Waker::noop());
        while let Some(f) = self.jobs.front_mut() {
            let Poll::Ready(r) = Pin::new(f).poll(&mut cx) else {
                break;
            };
            self.jobs.pop_front();
            self.gate.job_acked(delivered(r)?);
        }
        self.release().await
    }

    /// Waits for the oldest outstanding job, then releases what it frees.
    async fn wait_oldest_job(&mut self) -> anyhow::Result<()> {
        if let Some(f) = self.jobs.pop_front() {
            let ts = delivered(f.await)?;
            self.gate.job_acked(ts);
        }
        while now_ms() <= self.gate.ts {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        self.release().await
    }

    /// Produces the held share messages whose jobs are all acknowledged, in order.
    async fn release(&mut self) -> anyhow::Result<()> {
        while let Some(msg) = self.gate.next_free(now_ms()) {
            self.produce_shares(&msg).await?;
        }
        Ok(())
    }

    async fn produce_shares(&mut self, m: &Msg) -> anyhow::Result<()> {
        let topic = self.topic.clone();
        self.produce(&topic, &m.key, &m.payload, Some(m.partition))
            .await
    }

    /// Every job acknowledged and every share message produced.
    async fn settle(&mut self) -> anyhow::Result<()> {
        while !self.jobs.is_empty() {
            self.wait_oldest_job().await?;
        }
        while now_ms() <= self.gate.ts {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        self.release().await
    }
}

/// A delivery's broker timestamp, or why it failed.
fn delivered<E>(r: Result<OwnedDeliveryResult, E>) -> anyhow::Result<i64> {
    match r {
        Ok(Ok(d)) => Ok(d.timestamp.to_millis().unwrap_or(0)),
        Ok(Err((e, _))) => anyhow::bail!("a message was not delivered: {e}"),
        Err(_) => anyhow::bail!("the producer shut down before delivery"),
    }
}

/// Share batches being filled, by partition, and the order they were opened in (flushed in
/// that order). A share's partition is the one librdkafka's default partitioner gives its key
/// ([`partition_of`]), so every share that could repeat another still lands in one
/// partition; batching by partition rather than by key fills messages of many keys (256
/// nonce keys of header shares, a session's few shares) and makes fewer, larger messages.
/// A message's key is its first share's.
struct OpenBatches {
    batch: usize,
    partitions: i32,
    open: HashMap<i32, (Vec<u8>, Vec<ShareRecord>)>,
    order: Vec<i32>,
}

impl OpenBatches {
    /// Adds a share; returns its partition's message once it holds `batch` shares.
    fn add(&mut self, rec: ShareRecord) -> Option<Msg> {
        let key = key_of(&rec);
        let p = partition_of(key, self.partitions);
        let (_, v) = self.open.entry(p).or_insert_with(|| {
            self.order.push(p);
            (key.to_vec(), Vec::with_capacity(self.batch))
        });
        v.push(rec);
        if v.len() < self.batch {
            return None;
        }
        self.order.retain(|x| *x != p);
        self.take(p)
    }

    fn take(&mut self, p: i32) -> Option<Msg> {
        let (key, recs) = self.open.remove(&p)?;
        (!recs.is_empty()).then(|| Msg {
            partition: p,
            key,
            payload: encode_shares(&recs),
        })
    }
}

impl Sender {
    /// A producer connected, with the shares topic's leaders known, before the first
    /// message: otherwise the first messages wait in the producer for the connection and
    /// the metadata while their timestamps, taken when they are handed over, run (a paced
    /// send would show it as latency).
    async fn connect(k: &KafkaConfig) -> anyhow::Result<Sender> {
        let producer: FutureProducer = producer_config(k, "sharecheck-send")
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create a Kafka producer: {e}"))?;
        let (p, topic) = (producer.clone(), k.topics.shares.clone());
        let wanted = [k.topics.shares.clone(), k.topics.jobs.clone()];
        let partitions = tokio::task::spawn_blocking(move || {
            // Every topic first: asking for one by name lets a broker with
            // auto.create.topics.enable make it, with one partition, and shares sent there
            // would reach no node. send never creates topics.
            let all = p.client().fetch_metadata(None, Duration::from_secs(30))?;
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|w| !all.topics().iter().any(|t| t.name() == w.as_str()))
                .collect();
            if !missing.is_empty() {
                return Ok(Err(missing
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()));
            }
            // The shares topic's partition count, for placing share batches.
            p.client()
                .fetch_metadata(Some(&topic), Duration::from_secs(30))
                .map(|m| {
                    Ok(m.topics()
                        .iter()
                        .find(|t| t.name() == topic)
                        .map_or(1, |t| t.partitions().len().max(1) as i32))
                })
        })
        .await?
        .map_err(|e| {
            let hint = match super::access::secured_protocol(k) {
                Some(p) => format!(
                    " (security.protocol {p}: a refused TLS handshake or SASL login ends this \
                     way too; librdkafka's lines above say which)"
                ),
                None => String::new(),
            };
            anyhow::anyhow!("cannot reach the brokers {}: {e}{hint}", k.brokers)
        })?
        .map_err(|missing| {
            anyhow::anyhow!(
                "topic {} does not exist on {}: create the topics with `sharecheck topics \
                 create` (send does not create them)",
                missing.join(" and "),
                k.brokers
            )
        })?;
        Ok(Sender {
            producer,
            partitions,
            topic: k.topics.shares.clone(),
            pending: VecDeque::new(),
            jobs: VecDeque::new(),
            gate: JobGate::default(),
        })
    }

    /// Passes every open batch on (see [`Sender::shares`]), in the order they were opened.
    async fn flush_all(
        &mut self,
        open: &mut OpenBatches,
        sum: &mut SendSummary,
    ) -> anyhow::Result<()> {
        for p in std::mem::take(&mut open.order) {
            if let Some(msg) = open.take(p) {
                self.shares(msg).await?;
                sum.messages += 1;
            }
        }
        Ok(())
    }

    /// A job. The shares after it in the file are produced only once it is acknowledged, and
    /// are stamped after it (timestamps are in ms): with LogAppendTime topics the broker's
    /// append order is the order of the timestamps, and a share appended before its job
    /// would find no job. Until then the sender reads on, holding those shares back, so a
    /// stream with a job every few shares costs no round trip a job. A clean job makes
    /// every job before it stale, so every share before it is acknowledged first: a share
    /// still waiting in the producer (a broker away) must not be appended after the clean
    /// job that follows it in the file, or it would be judged stale.
    async fn job(
        &mut self,
        topic: &str,
        job: &crate::model::Job,
        open: &mut OpenBatches,
        sum: &mut SendSummary,
    ) -> anyhow::Result<()> {
        if job.clean_jobs {
            self.flush_all(open, sum).await?;
            self.settle().await?;
            self.drain(0).await?;
        }
        let payload = encode_job(job);
        // Jobs go where librdkafka's partitioner puts their id.
        let f = loop {
            let rec = FutureRecord::to(topic)
                .key(job.job_id.as_bytes())
                .payload(&payload);
            match self.producer.send_result(rec) {
                Ok(f) => break f,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.wait_oldest_job().await?;
                    self.drain(self.pending.len() / 2).await?;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => anyhow::bail!("cannot produce to {topic}: {e}"),
            }
        };
        self.jobs.push_back(f);
        self.gate.sent += 1;
        Ok(())
    }
}

/// Sends a JSONL stream; returns counts.
pub async fn run(
    k: &KafkaConfig,
    input: impl BufRead,
    opts: &SendOptions,
) -> anyhow::Result<SendSummary> {
    let mut s = Sender::connect(k).await?;
    let mut open = OpenBatches {
        batch: opts.batch.max(1),
        partitions: s.partitions,
        open: HashMap::new(),
        order: Vec::new(),
    };
    let mut sum = SendSummary::default();
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_flush = Instant::now();
    for line in jsonl::numbered_lines(input) {
        let (n, line) = line?;
        let Ok(line) = line else {
            eprintln!("sharecheck: line {n}: not UTF-8, skipped");
            sum.skipped += 1;
            continue;
        };
        let rec = match jsonl::parse_line(&line) {
            jsonl::Line::Blank => continue,
            jsonl::Line::Job(Ok(job)) => {
                s.job(&k.topics.jobs, &job, &mut open, &mut sum).await?;
                sum.jobs += 1;
                continue;
            }
            jsonl::Line::Job(Err(e)) => {
                eprintln!("sharecheck: line {n}: job skipped: {e}");
                sum.bad_jobs += 1;
                continue;
            }
            jsonl::Line::Share(Ok(rec)) => rec,
            jsonl::Line::Share(Err(v)) => match malformed_record(&v) {
                Some(r) => r,
                None => {
                    eprintln!("sharecheck: line {n}: share without a usable id skipped");
                    sum.skipped += 1;
                    continue;
                }
            },
        };
        sum.shares += 1;
        if let Some(msg) = open.add(rec) {
            s.shares(msg).await?;
            sum.messages += 1;
        }
        s.poll_jobs().await?;
        if opts.rate > 0.0 {
            // Paced: partial batches do not wait long, and the sender sleeps when ahead.
            if last_flush.elapsed() >= Duration::from_millis(20) {
                s.flush_all(&mut open, &mut sum).await?;
                last_flush = Instant::now();
            }
            let due = Duration::from_secs_f64(sum.shares as f64 / opts.rate);
            let ahead = due.saturating_sub(start.elapsed());
            if ahead > Duration::from_millis(2) {
                s.flush_all(&mut open, &mut sum).await?;
                tokio::time::sleep(ahead).await;
            }
        }
        if s.pending.len() > 20_000 {
            s.drain(10_000).await?;
        }
        if last_progress.elapsed() >= opts.progress {
            last_progress = Instant::now();
            eprintln!(
                "sharecheck: sent {} shares, {} jobs ({:.0} shares/s)",
                sum.shares,
                sum.jobs,
                sum.shares as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    s.flush_all(&mut open, &mut sum).await?;
    s.settle().await?;
    s.drain(0).await?;
    s.producer
        .flush(Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!("flushing the producer failed: {e}"))?;
    sum.seconds = start.elapsed().as_secs_f64();
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::binary::ShareTarget;

    #[test]
    fn keys_are_the_miner_session() {
        let r = ShareRecord::stratum(
            1,
            "j",
            &[1, 2, 3, 4],
            &[9],
            0,
            0,
            None,
            ShareTarget::Difficulty(1.0),
        );
        assert_eq!(share_key(&r), vec![1, 2, 3, 4]);
        let mut h = [0u8; 80];
        h[4..36].fill(7);
        h[76..80].copy_from_slice(&0x1c2d3e4fu32.to_le_bytes());
        let r = ShareRecord::header(2, &h, ShareTarget::Difficulty(1.0));
        assert_eq!(share_key(&r), vec![0x4f]);
        // An SV2 standard share of the same nonce meets the header share in one partition.
        let s = ShareRecord::sv2_standard(
            3,
            "17",
            0,
            0x1c2d3e4f,
            0x2000_0000,
            ShareTarget::Difficulty(1.0),
        );
        assert_eq!(share_key(&s), vec![0x4f]);
        let m = malformed_record(&Verdict::malformed(
            Some(5),
            crate::model::Malformed::Text("x".into()),
        ))
        .unwrap();
        assert!(m.check().is_err());
        assert_eq!(m.id(), 5);
    }

    /// librdkafka's consistent_random partitioner is CRC-32 (IEEE) of the key modulo the
    /// partition count; the check values are zlib's.
    #[test]
    fn partitions_follow_crc32() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(partition_of(b"123456789", 8), (0xcbf4_3926u32 % 8) as i32);
        assert_eq!(partition_of(&[1, 2, 3, 4], 1), 0);
        assert!((0..1000u32).all(|i| (0..7).contains(&partition_of(&i.to_be_bytes(), 7))));
    }

    #[test]
    fn share_messages_wait_for_the_jobs_before_them_in_order() {
        let mut g = JobGate::default();
        assert!(g.open(1), "no job yet: shares go at once");
        g.sent += 1; // job 1, not yet acknowledged
        assert!(!g.open(1));
        let msg = |k: &[u8]| Msg {
            partition: 0,
            key: k.to_vec(),
            payload: k.to_vec(),
        };
        g.hold(msg(b"a"));
        g.sent += 1; // job 2
        g.hold(msg(b"b"));
        assert_eq!(g.next_free(100), None, "job 1 not acknowledged");
        g.job_acked(50);
        assert_eq!(
            g.next_free(50),
            None,
            "the clock must pass job 1's timestamp"
        );
        assert_eq!(g.next_free(51), Some(msg(b"a")));
        assert_eq!(g.next_free(51), None, "the second waits for job 2");
        assert!(!g.open(51), "a new message queues behind the held one");
        g.job_acked(60);
        assert_eq!(g.next_free(61), Some(msg(b"b")));
        assert!(g.open(61));
        assert!(!g.open(60), "not within job 2's millisecond");
    }
}
