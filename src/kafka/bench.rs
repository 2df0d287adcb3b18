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
//!
//! While a phase runs, the bench only watches the output topic's end offsets (one ListOffsets
//! request every 50 ms) until it holds one message per share message; it reads the output
//! afterwards. Both figures come from the timestamps the producers wrote, not from when the
//! bench reads them, and a reader running beside the node would take CPU from it and from
//! the broker on a small machine: verdicts are read by other hosts in a deployment.

use super::{header_str, now_ms, partitions_of, producer_config, reader_config, source_headers};
use super::{ReaderContext, H_SOURCE_OFFSET, H_SOURCE_PARTITION};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::wire::binary::{batch_count, RecordKind};
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
    /// Miner sessions and shares between jobs of the generated workload. A stratum message
    /// holds one session's shares up to the next job (the sender flushes before every job),
    /// so stratum messages hold at most `shares_per_job / sessions` shares whatever `batch`
    /// says.
    pub sessions: u32,
    pub shares_per_job: u64,
    /// Drain phases per mode, pass-through and node alternating; the figures are medians.
    pub rounds: usize,
    /// The broker's process, when it runs on this machine: its CPU time is reported too.
    pub broker_pid: Option<u32>,
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
    /// The median over the rounds.
    pub drain_shares_per_sec: f64,
    /// Every round's figure, in order.
    pub drain_rounds: Vec<f64>,
    /// CPU time of this process (the consumer, the producer and the node's stages; the output
    /// is read after the phase) per share between the first and the last output message;
    /// median over the rounds.
    pub drain_cpu_ns_per_share: f64,
    /// CPU time of the whole machine (the broker included) per share between the first and
    /// the last output message; median over the rounds. Linux only (NaN elsewhere).
    pub drain_machine_cpu_ns_per_share: f64,
    /// CPU time of the broker process per share, likewise (with `--broker-pid`; else NaN).
    pub drain_broker_cpu_ns_per_share: f64,
    pub drain_messages: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub latency_shares: u64,
}

/// Runs both modes, pass-through first; returns their figures.
///
/// The drain phase runs `rounds` times per mode, the two modes alternating (pass-through,
/// node, pass-through, node, …) so that a slow spell of a shared machine hits both; the
/// latency phase runs once per mode after the drains.
pub async fn run(cfg: &Config, o: &BenchKafkaOptions) -> anyhow::Result<Vec<Figure>> {
    let w1 = workload(o, o.shares, o.seed)?;
    let w2 = workload(o, o.latency_shares, o.seed.wrapping_add(1))?;
    let run = format!("sharecheck.bench.{}", now_ms());
    let modes = [Mode::PassThrough, Mode::Node];
    let mut out: Vec<Figure> = modes
        .iter()
        .map(|m| Figure {
            mode: m.name(),
            ..Figure::default()
        })
        .collect();
    let mut cpu: Vec<Vec<[f64; 3]>> = vec![Vec::new(); modes.len()];
    for round in 0..o.rounds.max(1) {
        for (i, &mode) in modes.iter().enumerate() {
            let c = topics(cfg, &format!("{run}.{}.drain{round}", mode.name()));
            super::create_topics(&c.kafka).await?;
            send(&c, &w1, o.batch, 0.0).await?;
            let input = message_count(&c, &c.kafka.topics.shares).await?;
            let sampler = CpuSampler::start(o.broker_pid);
            let stop = start(mode, &c).await?;
            wait_output(mode, &c, input).await?;
            let got = collect(mode, &c, o.shares).await?;
            let samples = sampler.stop();
            let _ = stop.0.send(true);
            let first = got.iter().map(|g| g.ts).min().unwrap_or(0);
            let last = got.iter().map(|g| g.ts).max().unwrap_or(0);
            let used = cpu_between(&samples, first, last);
            let rate = o.shares as f64 / ((last - first).max(1) as f64 / 1000.0);
            let per_share = |s: f64| s * 1e9 / o.shares as f64;
            cpu[i].push(used.map(per_share));
            let f = &mut out[i];
            f.drain_messages = got.len() as u64;
            f.drain_rounds.push(rate);
            eprintln!(
                "sharecheck: {}: drained {} shares at {:.0} shares/s (round {}; CPU per share: {:.0} ns this process, {:.0} ns machine, {:.0} ns broker)",
                mode.name(),
                o.shares,
                rate,
                round + 1,
                per_share(used[0]),
                per_share(used[1]),
                per_share(used[2])
            );
            wait_stopped(stop).await;
            drop_topics(&c).await;
        }
    }
    for (i, &mode) in modes.iter().enumerate() {
        let f = &mut out[i];
        f.drain_shares_per_sec = median(f.drain_rounds.clone());
        f.drain_cpu_ns_per_share = median(cpu[i].iter().map(|c| c[0]).collect());
        f.drain_machine_cpu_ns_per_share = median(cpu[i].iter().map(|c| c[1]).collect());
        f.drain_broker_cpu_ns_per_share = median(cpu[i].iter().map(|c| c[2]).collect());
        // Latency.
        let c = topics(cfg, &format!("{run}.{}.latency", mode.name()));
        super::create_topics(&c.kafka).await?;
        let stop = start(mode, &c).await?;
        // The first twentieth of the workload goes out alone and the rest, at the rate, once
        // its output is there: the consumer has joined its group by then, and the measured
        // shares (those sent after the first output) are not queued behind the join.
        let (head, tail) = split_at_line(&w2, w2.len() / 20);
        send(&c, head, o.batch, 0.0).await?;
        let primed = message_count(&c, &c.kafka.topics.shares).await?;
        if primed > 0 {
            wait_output(mode, &c, primed).await?;
        }
        send(&c, tail, o.batch, o.rate).await?;
        let input = message_count(&c, &c.kafka.topics.shares).await?;
        wait_output(mode, &c, input).await?;
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
        drop_topics(&c).await;
    }
    Ok(out)
}

/// Deletes a phase's topics once its figures are taken: a run writes gigabytes, and repeated
/// runs would otherwise fill the broker's disk. A failure is logged, not fatal.
async fn drop_topics(c: &Config) {
    if let Err(e) = super::delete_topics(&c.kafka).await {
        tracing::warn!("benchmark topics not deleted: {e:#}");
    }
}

/// The median of a list of figures (the mean of the middle two for an even count; NaN when
/// empty).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// CPU time used so far, sampled every few milliseconds while a drain runs, so that the CPU
/// of the drain itself (between its first and last output message) can be told apart from
/// the consumer's start and the reader's tail. A sample: ms since the epoch, then CPU seconds
/// of this process (user + system, getrusage), of the whole machine (busy time, /proc/stat)
/// and of the broker process (/proc/PID/stat); NaN where there is no figure.
type CpuSample = (i64, [f64; 3]);

struct CpuSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<CpuSample>>,
}

impl CpuSampler {
    fn start(broker_pid: Option<u32>) -> CpuSampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            loop {
                let broker = broker_pid.map_or(f64::NAN, process_cpu_seconds_of);
                out.push((
                    now_ms(),
                    [process_cpu_seconds(), machine_cpu_seconds(), broker],
                ));
                if s.load(std::sync::atomic::Ordering::Relaxed) {
                    return out;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        CpuSampler { stop, thread }
    }

    fn stop(self) -> Vec<CpuSample> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// CPU seconds used between two instants (ms since the epoch), each figure linearly
/// interpolated between the samples around them.
fn cpu_between(samples: &[CpuSample], from: i64, to: i64) -> [f64; 3] {
    let at = |t: i64| -> [f64; 3] {
        let i = samples.partition_point(|s| s.0 <= t);
        match (
            i.checked_sub(1).and_then(|j| samples.get(j)),
            samples.get(i),
        ) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                let f = (t - a.0) as f64 / (b.0 - a.0) as f64;
                std::array::from_fn(|k| a.1[k] + f * (b.1[k] - a.1[k]))
            }
            (Some(a), _) => a.1,
            (None, Some(b)) => b.1,
            (None, None) => [f64::NAN; 3],
        }
    };
    let (a, b) = (at(from), at(to));
    std::array::from_fn(|k| b[k] - a[k])
}

/// User + system CPU seconds of another process, from /proc/PID/stat (NaN if unreadable).
fn process_cpu_seconds_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_pid_stat_cpu_ticks(&s))
        .map_or(f64::NAN, ticks_to_seconds)
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line. The command name (field 2) is
/// in parentheses and may hold spaces, so fields are counted after its closing parenthesis.
fn parse_pid_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, i.e. index 11 here.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn ticks_to_seconds(ticks: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 }
}

fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn machine_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| parse_proc_stat_busy(&s))
        .map_or(f64::NAN, ticks_to_seconds)
}

/// Busy ticks of all cores from /proc/stat's first line: user, nice, system, irq and softirq
/// (idle, iowait and the time taken by other guests of the host are left out).
fn parse_proc_stat_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq [steal guest guest_nice]
    Some(f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?)
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

fn workload(o: &BenchKafkaOptions, shares: u64, seed: u64) -> anyhow::Result<Vec<u8>> {
    let g = crate::gen::GenConfig {
        shares,
        seed,
        mode: o.shares_mode,
        sessions: o.sessions,
        shares_per_job: o.shares_per_job,
        ..Default::default()
    };
    let mut buf = Vec::new();
    crate::gen::generate(&g, &mut buf)?;
    Ok(buf)
}

/// `w` cut after the first line that ends at or past `at` (JSONL: jobs and shares stay whole).
fn split_at_line(w: &[u8], at: usize) -> (&[u8], &[u8]) {
    match w.get(at..).and_then(|r| r.iter().position(|&b| b == b'\n')) {
        Some(i) => w.split_at(at + i + 1),
        None => (w, &[]),
    }
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

/// Messages in `topic` (the sum of its partitions' end offsets; a phase's topics are new).
async fn message_count(c: &Config, topic: &str) -> anyhow::Result<i64> {
    let (c, topic) = (c.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let r: BaseConsumer<ReaderContext> =
            reader_config(&c.kafka, "sharecheck-bench-ends").create_with_context(ReaderContext)?;
        let parts = partitions_of(&r, &topic, Duration::from_secs(30))?;
        end_offsets_sum(&r, &topic, &parts)
    })
    .await?
}

/// Sum of the end offsets of `parts`, in one ListOffsets request.
fn end_offsets_sum(
    r: &BaseConsumer<ReaderContext>,
    topic: &str,
    parts: &[i32],
) -> anyhow::Result<i64> {
    let ends = super::end_offsets(r, topic, parts, Duration::from_secs(10))?;
    Ok(ends.iter().map(|e| e.1).sum())
}

/// Waits until the output topic holds `messages` messages (one per share message), watching
/// its end offsets without reading it, so that the phase runs without a reader beside it.
async fn wait_output(mode: Mode, c: &Config, messages: i64) -> anyhow::Result<()> {
    let c = c.clone();
    tokio::task::spawn_blocking(move || {
        let topic = c.kafka.topics.verdicts.clone();
        let r: BaseConsumer<ReaderContext> =
            reader_config(&c.kafka, "sharecheck-bench-ends").create_with_context(ReaderContext)?;
        let parts = partitions_of(&r, &topic, Duration::from_secs(30))?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let n = end_offsets_sum(&r, &topic, &parts)?;
            if n >= messages {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{}: only {n} of {messages} output messages within 600 s",
                mode.name()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await?
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
            // Counted from the batch header, not decoded: the reader shares the machine with
            // what it measures, and decoding costs differ between the two kinds.
            let kind = match mode {
                Mode::Node => RecordKind::Verdicts,
                Mode::PassThrough => RecordKind::Shares,
            };
            n += batch_count(payload, kind).map_or(0, u64::from);
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
            let n =
                batch_count(m.payload().unwrap_or(&[]), RecordKind::Shares).map_or(0, u64::from);
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
    use super::{
        cpu_between, median, parse_pid_stat_cpu_ticks, parse_proc_stat_busy, quantile,
        split_at_line,
    };

    #[test]
    fn workloads_are_cut_after_whole_lines() {
        let w = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n";
        assert_eq!(split_at_line(w, 0), (&w[..8], &w[8..]));
        assert_eq!(split_at_line(w, 7), (&w[..8], &w[8..]));
        assert_eq!(split_at_line(w, 8), (&w[..16], &w[16..]));
        assert_eq!(split_at_line(w, 23), (&w[..], &b""[..]));
        assert_eq!(split_at_line(w, 99), (&w[..], &b""[..]));
        assert_eq!(split_at_line(b"", 0), (&b""[..], &b""[..]));
    }

    #[test]
    fn cpu_between_interpolates_the_samples() {
        let s = [
            (1000, [1.0, 10.0, 0.0]),
            (1010, [2.0, 12.0, 0.0]),
            (1030, [2.0, 16.0, 4.0]),
        ];
        assert_eq!(cpu_between(&s, 1000, 1030), [1.0, 6.0, 4.0]);
        assert_eq!(cpu_between(&s, 1005, 1020), [0.5, 3.0, 2.0]);
        // Outside the samples: the nearest one.
        assert_eq!(cpu_between(&s, 900, 2000), [1.0, 6.0, 4.0]);
        assert!(cpu_between(&[], 1, 2)[0].is_nan());
    }

    #[test]
    fn pid_stat_cpu_skips_the_command_name() {
        let line = "4242 (java) a b) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 80 0 1\n";
        assert_eq!(parse_pid_stat_cpu_ticks(line), Some(175));
        assert_eq!(parse_pid_stat_cpu_ticks("4242 (java) S 1 2"), None);
    }

    #[test]
    fn medians_and_busy_ticks() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
        let stat = "cpu  100 5 50 1000 7 3 2 9 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(parse_proc_stat_busy(stat), Some(100 + 5 + 50 + 3 + 2));
        assert_eq!(parse_proc_stat_busy("cpu0 1 2\n"), None);
        assert_eq!(parse_proc_stat_busy("cpu  1 x 3 4 5 6 7\n"), None);
    }

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
