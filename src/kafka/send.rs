//! `sharecheck send`: JSON Lines (as read by `verify`) to Kafka. Jobs go to the jobs topic,
//! one message each, acknowledged before any share after them is produced (and the shares
//! after a job are stamped later than it, so that staleness by time sees the file's order).
//! Shares go to the shares topic as binary batches keyed by miner session: extranonce1 for
//! stratum shares (the channel's extranonce prefix for SV2 extended shares), the job id for
//! SV2 standard shares (a standard job is its channel's), prevhash for header shares
//! (duplicates are tracked per partition, so every share that could repeat another must land
//! in the same partition).

use super::{now_ms, producer_config};
use crate::config::KafkaConfig;
use crate::model::share::KIND_SV2_STANDARD;
use crate::model::Verdict;
use crate::wire::binary::{encode_job, encode_shares, ShareRecord, KIND_HEADER};
use crate::wire::jsonl;
use bytemuck::Zeroable;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashMap;
use std::io::BufRead;
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

/// The partition key of a share: its miner session.
pub fn share_key(rec: &ShareRecord) -> Vec<u8> {
    key_of(rec).to_vec()
}

/// [`share_key`], borrowed from the record.
pub fn key_of(rec: &ShareRecord) -> &[u8] {
    if rec.kind == KIND_HEADER {
        // prevhash: header bytes 4..36.
        return &rec.payload[4..36];
    }
    if rec.kind == KIND_SV2_STANDARD {
        return &rec.payload[16..16 + (rec.job_id_len as usize).min(32)];
    }
    let n = (rec.extranonce1_len as usize).min(32);
    &rec.payload[48..48 + n]
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
    topic: String,
    pending: Vec<DeliveryFuture>,
}

impl Sender {
    /// Enqueues one message; waits (without reordering) while librdkafka's queue is full.
    async fn produce(&mut self, topic: &str, key: &[u8], payload: &[u8]) -> anyhow::Result<()> {
        loop {
            let rec = FutureRecord::to(topic).key(key).payload(payload);
            match self.producer.send_result(rec) {
                Ok(f) => {
                    self.pending.push(f);
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

    /// Waits for the oldest deliveries until at most `keep` are outstanding.
    async fn drain(&mut self, keep: usize) -> anyhow::Result<i64> {
        let mut last_ts = 0;
        while self.pending.len() > keep {
            let f = self.pending.remove(0);
            match f.await {
                Ok(Ok(d)) => last_ts = d.timestamp.to_millis().unwrap_or(0),
                Ok(Err((e, _))) => anyhow::bail!("a message was not delivered: {e}"),
                Err(_) => anyhow::bail!("the producer shut down before delivery"),
            }
        }
        Ok(last_ts)
    }
}

/// Share batches being filled, by key, and the order keys were opened in (flushed in that
/// order).
struct OpenBatches {
    batch: usize,
    open: HashMap<Vec<u8>, Vec<ShareRecord>>,
    order: Vec<Vec<u8>>,
}

impl OpenBatches {
    /// Adds a share; returns its key's batch once it holds `batch` shares.
    fn add(&mut self, rec: ShareRecord) -> Option<(Vec<u8>, Vec<ShareRecord>)> {
        let key = share_key(&rec);
        let v = self.open.entry(key.clone()).or_insert_with(|| {
            self.order.push(key.clone());
            Vec::with_capacity(self.batch)
        });
        v.push(rec);
        if v.len() < self.batch {
            return None;
        }
        let recs = self.open.remove(&key).unwrap_or_default();
        self.order.retain(|x| *x != key);
        Some((key, recs))
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
        tokio::task::spawn_blocking(move || {
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
            p.client()
                .fetch_metadata(Some(&topic), Duration::from_secs(30))
                .map(|_| Ok(()))
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
            topic: k.topics.shares.clone(),
            pending: Vec::new(),
        })
    }

    /// Produces every open batch, in the order they were opened.
    async fn flush_all(
        &mut self,
        open: &mut OpenBatches,
        sum: &mut SendSummary,
    ) -> anyhow::Result<()> {
        let topic = self.topic.clone();
        for key in open.order.drain(..) {
            if let Some(recs) = open.open.remove(&key) {
                if !recs.is_empty() {
                    self.produce(&topic, &key, &encode_shares(&recs)).await?;
                    sum.messages += 1;
                }
            }
        }
        Ok(())
    }

    /// A job, produced once every share before it is acknowledged, and acknowledged before
    /// the next share is produced, which is stamped after it (timestamps are in ms). With
    /// LogAppendTime topics the broker's append order is the order of the timestamps: a
    /// share still waiting in the producer (a broker away) must not be appended after the
    /// job that follows it in the file, or it would be judged stale.
    async fn job(&mut self, topic: &str, job: &crate::model::Job) -> anyhow::Result<()> {
        self.drain(0).await?;
        self.produce(topic, job.job_id.as_bytes(), &encode_job(job))
            .await?;
        let ts = self.drain(0).await?;
        while now_ms() <= ts {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
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
                s.flush_all(&mut open, &mut sum).await?;
                s.job(&k.topics.jobs, &job).await?;
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
        if let Some((key, recs)) = open.add(rec) {
            s.produce(&k.topics.shares, &key, &encode_shares(&recs))
                .await?;
            sum.messages += 1;
        }
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
        let r = ShareRecord::header(2, &h, ShareTarget::Difficulty(1.0));
        assert_eq!(share_key(&r), vec![7; 32]);
        let m = malformed_record(&Verdict::malformed(
            Some(5),
            crate::model::Malformed::Text("x".into()),
        ))
        .unwrap();
        assert!(m.check().is_err());
        assert_eq!(m.id(), 5);
    }
}
