//! `sharecheck bench-kafka`: the node end to end against a raw pass-through, in one run.
//!
//! Both read the same share messages (the same generated workload, sent by the same sender,
//! so the same batches) from topics of their own and write one message per share message:
//! the node its verdicts, the pass-through the share batch itself, copied by a consumer-group
//! member and a producer with the node's settings (acks=all, idempotence, offsets stored after
//! the acknowledgement) and no validation. Two phases each:
//!
//! - **drain**: the workload is in the topic before the consumer starts; shares/s is the
//!   workload over the time between the first and the last output message (message
//!   timestamps), so the group join is left out.
//! - **latency**: the consumer runs first, then the second workload is sent at `--rate`;
//!   a share's latency is its output message's timestamp minus its share message's timestamp
//!   (both stamped by their producers), counted per share, over the share messages sent after
//!   the first output appeared.

use super::{header_str, now_ms, partitions_of, producer_config, reader_config, source_headers};
use super::{ReaderContext, H_SOURCE_OFFSET, H_SOURCE_PARTITION};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::wire::binary::{decode_shares, decode_verdicts};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct BenchKafkaOptions {
    /// Shares in the drain workload.
    pub shares: u64,
    /// Shares in the latency workload, and their rate.
    pub latency_shares: u64,
    pub rate: f64,
    /// Shares per message (per miner session), as `send --batch`.
    pub batch: usize,
    pub seed: u64,
    /// The kind of shares generated (stratum, header, or both alternating).
    pub shares_mode: crate::gen::GenMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    PassThrough,
    Node,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::PassThrough => "pass-through",
            Mode::Node => "node",
        }
    }
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Figure {
    pub mode: &'static str,
    pub drain_shares_per_sec: f64,
    pub drain_messages: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub latency_shares: u64,
}

/// Runs both modes, pass-through first; returns their figures.
pub async fn run(cfg: &Config, o: &BenchKafkaOptions) -> anyhow::Result<Vec<Figure>> {
    let w1 = workload(o.shares, o.seed, o.shares_mode)?;
    let w2 = workload(o.latency_shares, o.seed.wrapping_add(1), o.shares_mode)?;
    let run = format!("sharecheck.bench.{}", now_ms());
    let mut out = Vec::new();
    for mode in [Mode::PassThrough, Mode::Node] {
        let mut f = Figure {
            mode: mode.name(),
            ..Figure::default()
        };
        // Drain.
        let c = topics(cfg, &format!("{run}.{}.drain", mode.name()));
        super::create_topics(&c.kafka).await?;
        send(&c, &w1, o.batch, 0.0).await?;
        let stop = start(mode, &c).await?;
        let got = collect(mode, &c, o.shares).await?;
        let _ = stop.0.send(true);
        f.drain_messages = got.len() as u64;
        let first = got.iter().map(|g| g.ts).min().unwrap_or(0);
        let last = got.iter().map(|g| g.ts).max().unwrap_or(0);
        f.drain_shares_per_sec = o.shares as f64 / ((last - first).max(1) as f64 / 1000.0);
        eprintln!(
            "sharecheck: {}: drained {} shares at {:.0} shares/s",
            mode.name(),
            o.shares,
            f.drain_shares_per_sec
        );
        wait_stopped(stop).await;
        // Latency.
        let c = topics(cfg, &format!("{run}.{}.latency", mode.name()));
        super::create_topics(&c.kafka).await?;
        let stop = start(mode, &c).await?;
        send(&c, &w2, o.batch, o.rate).await?;
        let got = collect(mode, &c, o.latency_shares).await?;
        let _ = stop.0.send(true);
        let sent = sent_times(&c).await?;
        let first_out = got.iter().map(|g| g.ts).min().unwrap_or(0);
        let mut lat: Vec<(i64, u64)> = got
            .iter()
            .filter_map(|g| {
                let (ts, n) = sent.get(&(g.partition, g.offset))?;
                (*ts >= first_out).then_some((g.ts - ts, *n))
            })
            .collect();
        lat.sort_unstable();
        f.latency_shares = lat.iter().map(|x| x.1).sum();
        f.latency_p50_ms = quantile(&lat, 0.50);
        f.latency_p99_ms = quantile(&lat, 0.99);
        f.latency_max_ms = lat.last().map_or(f64::NAN, |x| x.0 as f64);
        eprintln!(
            "sharecheck: {}: latency at {:.0} shares/s: p50 {:.0} ms, p99 {:.0} ms over {} shares",
            mode.name(),
            o.rate,
            f.latency_p50_ms,
            f.latency_p99_ms,
            f.latency_shares
        );
        wait_stopped(stop).await;
        out.push(f);
    }
    Ok(out)
}

/// The share-weighted quantile of sorted (latency, shares) pairs.
fn quantile(sorted: &[(i64, u64)], q: f64) -> f64 {
    let total: u64 = sorted.iter().map(|x| x.1).sum();
    if total == 0 {
        return f64::NAN;
    }
    let want = (q * total as f64).ceil().max(1.0) as u64;
    let mut acc = 0;
    for (v, n) in sorted {
        acc += n;
        if acc >= want {
            return *v as f64;
        }
    }
    sorted.last().map_or(f64::NAN, |x| x.0 as f64)
}

fn workload(shares: u64, seed: u64, mode: crate::gen::GenMode) -> anyhow::Result<Vec<u8>> {
    let g = crate::gen::GenConfig {
        shares,
        seed,
        mode,
        ..Default::default()
    };
    let mut buf = Vec::new();
    crate::gen::generate(&g, &mut buf)?;
    Ok(buf)
}

/// The config with the topics and group of one phase.
fn topics(cfg: &Config, prefix: &str) -> Config {
    let mut c = cfg.clone();
    let t = &mut c.kafka.topics;
    t.shares = format!("{prefix}.shares");
    t.jobs = format!("{prefix}.jobs");
    t.verdicts = format!("{prefix}.out");
    t.blocks = format!("{prefix}.blocks");
    t.dead_letter = format!("{prefix}.dead-letter");
    c.kafka.group_id = format!("{prefix}.group");
    c.metrics.listen = String::new();
    c
}

async fn send(c: &Config, w: &[u8], batch: usize, rate: f64) -> anyhow::Result<()> {
    let opts = super::send::SendOptions {
        batch,
        rate,
        progress: Duration::from_secs(3600),
    };
    super::send::run(&c.kafka, w, &opts).await?;
    Ok(())
}

/// Starts the node or the pass-through on a phase's topics; `true` on the sender stops it.
async fn start(
    mode: Mode,
    c: &Config,
) -> anyhow::Result<(
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let c = c.clone();
    let h = match mode {
        Mode::Node => {
            let backend =
                crate::backend::open_with(&crate::backend::Options::from_config(&c.backend))?;
            tokio::spawn(async move {
                super::node::run(c, backend, Arc::new(Metrics::new()), rx).await?;
                Ok(())
            })
        }
        Mode::PassThrough => tokio::spawn(pass_through(c, rx)),
    };
    Ok((tx, h))
}

async fn wait_stopped(
    s: (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ),
) {
    match s.1.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("stopped with an error: {e:#}"),
        Err(e) => tracing::warn!("stopped with a panic: {e}"),
    }
}

/// The raw pass-through: every share message copied as it is to the output topic, with the
/// node's producer settings and source headers, its offset stored once the copy is
/// acknowledged.
async fn pass_through(
    c: Config,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let k = &c.kafka;
    let mut cc = reader_config(k, "sharecheck-bench-pass");
    cc.set("group.id", &k.group_id)
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false");
    let consumer: Arc<StreamConsumer> = Arc::new(
        cc.create()
            .map_err(|e| anyhow::anyhow!("cannot create the pass-through consumer: {e}"))?,
    );
    let producer: FutureProducer = producer_config(k, "sharecheck-bench-pass")
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create the pass-through producer: {e}"))?;
    consumer.subscribe(&[&k.topics.shares])?;
    let mut acks = tokio::task::JoinSet::new();
    loop {
        let m = tokio::select! {
            _ = stop.changed() => break,
            m = consumer.recv() => m,
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("pass-through: {e}");
                continue;
            }
        };
        let (p, o) = (m.partition(), m.offset());
        let headers = source_headers(&k.topics.shares, p, o);
        let fut = loop {
            let mut rec = FutureRecord::<[u8], [u8]>::to(&k.topics.verdicts)
                .payload(m.payload().unwrap_or(&[]))
                .headers(headers.clone());
            if let Some(key) = m.key() {
                rec = rec.key(key);
            }
            match producer.send_result(rec) {
                Ok(f) => break f,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => anyhow::bail!("pass-through: cannot produce: {e}"),
            }
        };
        let (consumer, topic) = (consumer.clone(), k.topics.shares.clone());
        acks.spawn(async move {
            if let Ok(Ok(_)) = fut.await {
                let mut tpl = TopicPartitionList::new();
                if tpl
                    .add_partition_offset(&topic, p, Offset::Offset(o + 1))
                    .is_ok()
                {
                    let _ = consumer.store_offsets(&tpl);
                }
            }
        });
        while acks.try_join_next().is_some() {}
    }
    while acks.join_next().await.is_some() {}
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    Ok(())
}

/// One output message: its source share message and timestamp.
struct Out {
    partition: i32,
    offset: i64,
    ts: i64,
}

/// Reads the output topic until it holds `shares` shares (verdicts or copied records).
async fn collect(mode: Mode, c: &Config, shares: u64) -> anyhow::Result<Vec<Out>> {
    let c = c.clone();
    tokio::task::spawn_blocking(move || {
        let topic = c.kafka.topics.verdicts.clone();
        let r = reader_at_start(&c, &topic)?;
        let deadline = Instant::now() + Duration::from_secs(600);
        let (mut n, mut out) = (0u64, Vec::new());
        while n < shares {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{}: only {n} of {shares} shares came out within 600 s",
                mode.name()
            );
            let Some(Ok(m)) = r.poll(Duration::from_millis(100)) else {
                continue;
            };
            let payload = m.payload().unwrap_or(&[]);
            n += match mode {
                Mode::Node => decode_verdicts(payload).map_or(0, |v| v.len() as u64),
                Mode::PassThrough => decode_shares(payload).map_or(0, |v| v.len() as u64),
            };
            let h = m.headers();
            let p = h.and_then(|h| header_str(h, H_SOURCE_PARTITION));
            let o = h.and_then(|h| header_str(h, H_SOURCE_OFFSET));
            if let (Some(p), Some(o)) = (
                p.and_then(|p| p.parse().ok()),
                o.and_then(|o| o.parse().ok()),
            ) {
                out.push(Out {
                    partition: p,
                    offset: o,
                    ts: m.timestamp().to_millis().unwrap_or(0),
                });
            }
        }
        Ok(out)
    })
    .await?
}

/// (partition, offset) → (timestamp, shares) of every share message of a phase.
async fn sent_times(c: &Config) -> anyhow::Result<HashMap<(i32, i64), (i64, u64)>> {
    let c = c.clone();
    tokio::task::spawn_blocking(move || {
        let topic = c.kafka.topics.shares.clone();
        let r = reader_at_start(&c, &topic)?;
        let parts = partitions_of(&r, &topic, Duration::from_secs(10))?;
        let mut left = 0;
        for p in &parts {
            let (lo, hi) = r.fetch_watermarks(&topic, *p, Duration::from_secs(10))?;
            left += hi - lo;
        }
        let mut out = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while (out.len() as i64) < left && Instant::now() < deadline {
            let Some(Ok(m)) = r.poll(Duration::from_millis(100)) else {
                continue;
            };
            let n = decode_shares(m.payload().unwrap_or(&[])).map_or(0, |v| v.len() as u64);
            out.insert(
                (m.partition(), m.offset()),
                (m.timestamp().to_millis().unwrap_or(0), n),
            );
        }
        Ok(out)
    })
    .await?
}

fn reader_at_start(c: &Config, topic: &str) -> anyhow::Result<BaseConsumer<ReaderContext>> {
    let mut cc = reader_config(&c.kafka, "sharecheck-bench-reader");
    cc.set("enable.partition.eof", "false");
    let r: BaseConsumer<ReaderContext> = cc.create_with_context(ReaderContext)?;
    let parts = partitions_of(&r, topic, Duration::from_secs(30))?;
    let mut tpl = TopicPartitionList::new();
    for p in parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    r.assign(&tpl)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_are_weighted_by_shares() {
        let v = [(1, 10), (5, 80), (100, 10)];
        assert_eq!(quantile(&v, 0.5), 5.0);
        assert_eq!(quantile(&v, 0.9), 5.0);
        assert_eq!(quantile(&v, 0.99), 100.0);
        assert_eq!(quantile(&v, 0.05), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
