//! "Memory bounded" drills against a real node process: floods of jobs and of unique shares,
//! and producer timestamps that try to steer staleness and job expiry. Each test measures
//! what an issue recorded before the bounds existed (100 000 jobs: 100 001 cached, +249 MB
//! RSS; 10 000 jobs with 16 KiB coinbases: +352 MB; 2 M unique shares: duplicate sets
//! +164 MB with no cap; a job stamped in the future then a restart: 87 `stale` verdicts
//! turned `unknown_job`; shares stamped 1970 accepted) and prints its figures with
//! [`report`]. docs/security.md ("Measured") has the figures.

mod kafka_support;
use kafka_support::*;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use sharecheck::model::{Job, Status};
use sharecheck::wire::binary::{
    decode_verdicts, encode_job, encode_shares, ShareRecord, ShareTarget,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const MB: f64 = 1e6;
/// librdkafka's default `queued.max.messages.kbytes`: what one consumer (the jobs reader,
/// the share consumer) may hold of prefetched messages beyond what the node keeps itself.
const PREFETCH: f64 = 65536.0 * 1024.0;

/// Adds `lines` at the top of `[table]` of the env's config (the helper writes
/// `[validation]` and `[kafka]` itself, and TOML allows a table once).
fn set_keys(env: &Env, table: &str, lines: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let head = format!("[{table}]\n");
    assert!(text.contains(&head), "no {head} in:\n{text}");
    let text = text.replacen(&head, &format!("{head}{lines}\n"), 1);
    std::fs::write(&env.config, text).unwrap();
}

/// An env with a metrics listener on a port of its own.
fn env_with_metrics(test: &str) -> (Env, u16) {
    let port = free_port();
    let env = Env::new(test, &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    (env, port)
}

fn scrape(port: u16) -> String {
    http_get(port, "/metrics")
}

/// The sum of every series of `name` (with whatever labels).
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            rest.trim().parse::<f64>().ok()
        })
        .sum()
}

fn rss(port: u16) -> f64 {
    metric(&scrape(port), "process_resident_memory_bytes").expect("process_resident_memory_bytes")
}

/// The node's peak RSS so far (VmHWM of /proc/PID/status), in bytes.
fn peak_rss(node: &Proc) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

/// Waits until `/readyz` says ready (partitions held, jobs reader caught up with the jobs
/// topic, backend in service).
fn wait_ready(port: u16, node: &mut Proc, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let r = http_get(port, "/readyz");
        if r == "ready\n" {
            return;
        }
        assert!(
            node.wait_for(Duration::ZERO).is_none(),
            "the node exited: {}",
            node.log_text()
        );
        assert!(
            Instant::now() < deadline,
            "not ready after {limit:?}: {r:?}; node log:\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `name` reaches `want`; returns the last scrape.
fn wait_metric(port: u16, name: &str, want: f64, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = scrape(port);
        let got = metric(&text, name);
        if got.is_some_and(|v| v >= want) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{name} {got:?} after {limit:?}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn producer(env: &Env) -> BaseProducer {
    env.client_config()
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("enable.idempotence", "true")
        .create()
        .unwrap()
}

/// Produces one message, waiting while librdkafka's queue is full.
fn produce(p: &BaseProducer, topic: &str, partition: Option<i32>, ts: Option<i64>, payload: &[u8]) {
    loop {
        let mut r = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
        if let Some(part) = partition {
            r = r.partition(part);
        }
        if let Some(t) = ts {
            r = r.timestamp(t);
        }
        match p.send(r) {
            Ok(()) => return,
            Err((
                rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                _,
            )) => {
                p.poll(Duration::from_millis(50));
            }
            Err((e, _)) => panic!("produce to {topic}: {e}"),
        }
    }
}

fn now_s() -> u32 {
    (sharecheck::kafka::now_ms() / 1000) as u32
}

/// A job whose work differs with its id; `coinbase` bytes of coinbase parts in all.
fn job(id: &str, coinbase: usize, ntime: u32, clean: bool) -> Job {
    let half = coinbase / 2;
    let mut coinb1 = vec![0x11; half.saturating_sub(id.len())];
    coinb1.extend_from_slice(id.as_bytes());
    Job {
        job_id: id.into(),
        prevhash: [7; 32],
        coinb1,
        coinb2: vec![0x22; coinbase - half],
        merkle_branch: vec![],
        version: 0x2000_0000,
        nbits: 0x1703_4219,
        ntime,
        clean_jobs: clean,
        version_mask: 0x1fff_e000,
        extranonce_size: None,
        merkle_root: None,
        step: Default::default(),
    }
}

/// Bytes the node's job log counts for a job (coinbase parts, branch, id).
fn job_bytes(j: &Job) -> usize {
    j.coinb1.len() + j.coinb2.len() + 32 * j.merkle_branch.len() + j.job_id.len()
}

/// A stratum share on `job` that every hash meets (target 2^256 - 1; the job's nbits is
/// mainnet-like, so no block): `accepted` unless it is refused before hashing. `n` makes
/// its work unique (extranonce2 and nonce).
fn share(id: u64, job: &str, ntime: u32, n: u32) -> ShareRecord {
    ShareRecord::stratum(
        id,
        job,
        &[1, 2, 3, 4],
        &n.to_be_bytes(),
        ntime,
        n,
        None,
        ShareTarget::Target([0xff; 32]),
    )
}

/// The verdicts topic read as it grows: share id → every status it got, in order.
struct Verdicts {
    c: BaseConsumer,
    by_id: HashMap<u64, Vec<Status>>,
}

impl Verdicts {
    fn new(env: &Env) -> Verdicts {
        Verdicts {
            c: env.reader(&env.topic("verdicts")),
            by_id: HashMap::new(),
        }
    }

    /// Reads until every id of `ids` has a verdict, or `limit`.
    fn wait_for(&mut self, ids: impl IntoIterator<Item = u64> + Clone, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let missing = ids
                .clone()
                .into_iter()
                .filter(|i| !self.by_id.contains_key(i))
                .count();
            if missing == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} shares without a verdict after {limit:?}"
            );
            // Read whatever came, then count again.
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until {
                match self.c.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        for v in decode_verdicts(m.payload().unwrap_or(&[])).unwrap() {
                            self.by_id
                                .entry(v.id.expect("id"))
                                .or_default()
                                .push(v.status);
                        }
                    }
                    Some(Err(_)) | None => break,
                }
            }
        }
    }

    /// The first verdict of `id`.
    fn first(&self, id: u64) -> Status {
        self.by_id[&id][0]
    }

    /// The last verdict of `id`.
    fn last(&self, id: u64) -> Status {
        *self.by_id[&id].last().unwrap()
    }
}

/// Counts by status, as "accepted 10, stale 2".
fn tally(statuses: impl IntoIterator<Item = Status>) -> String {
    let mut m: std::collections::BTreeMap<Status, usize> = Default::default();
    for s in statuses {
        *m.entry(s).or_default() += 1;
    }
    m.iter()
        .map(|(s, n)| format!("{} {n}", serde_json::to_value(s).unwrap().as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a job flood left in the node.
struct Flood {
    sent: usize,
    cached: f64,
    log_bytes: f64,
    rss_before: f64,
    rss_after: f64,
    peak: f64,
    seconds: f64,
    /// The most `sharecheck_jobs_cached` said while the flood was read.
    peak_cached: f64,
    probes: String,
    trickle: String,
}

/// Floods the jobs topic of a running node with `n` distinct jobs of `coinbase` bytes of
/// coinbase parts (produced as fast as the broker takes them), with a few shares on the
/// newest job now and then on every partition (so that the validators take the jobs as they
/// come, as under load, not only the log); then waits until the jobs reader has taken every
/// job and sends probe shares on the newest job.
fn flood(env: &Env, port: u16, node: &mut Proc, n: usize, coinbase: usize) -> Flood {
    wait_ready(port, node, Duration::from_secs(60));
    let rss_before = rss(port);
    let p = producer(env);
    let (jobs_topic, shares_topic) = (env.topic("jobs"), env.topic("shares"));
    let ntime = now_s();
    let mut next_id = 1u64;
    let mut trickle = Vec::new();
    let t0 = Instant::now();
    let every = (n / 20).max(1);
    for i in 0..n {
        let j = job(&format!("f{i}"), coinbase, ntime, i == 0);
        produce(&p, &jobs_topic, None, None, &encode_job(&j));
        if i % every == every - 1 {
            // The job first, then its shares (a share's batch waits for the jobs published
            // before it).
            p.flush(Duration::from_secs(30)).unwrap();
            for part in 0..env.partitions {
                let recs: Vec<_> = (0..3)
                    .map(|k| {
                        let id = next_id;
                        next_id += 1;
                        trickle.push(id);
                        share(id, &j.job_id, ntime, (i * 8 + k) as u32)
                    })
                    .collect();
                produce(&p, &shares_topic, Some(part), None, &encode_shares(&recs));
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
    let produced_s = t0.elapsed().as_secs_f64();
    // Caught up: every job taken (all are usable), and /readyz says the reader reached the
    // topic's end.
    let mut peak_cached = 0.0f64;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = scrape(port);
        peak_cached = peak_cached.max(metric(&text, "sharecheck_jobs_cached").unwrap_or(0.0));
        if metric(&text, "sharecheck_jobs_received_total").is_some_and(|v| v >= n as f64) {
            break;
        }
        assert!(Instant::now() < deadline, "jobs reader behind: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_ready(port, node, Duration::from_secs(30));
    let seconds = t0.elapsed().as_secs_f64();
    // The live work: shares on the newest job, on every partition, and one on the first.
    let newest = format!("f{}", n - 1);
    let mut probes = Vec::new();
    for part in 0..env.partitions {
        let recs: Vec<_> = (0..5)
            .map(|k| {
                let id = 1_000_000 + (part * 5 + k) as u64;
                probes.push(id);
                share(id, &newest, ntime, 0x4000_0000 + id as u32)
            })
            .collect();
        produce(&p, &shares_topic, Some(part), None, &encode_shares(&recs));
    }
    let oldest_probe = 2_000_000u64;
    produce(
        &p,
        &shares_topic,
        Some(0),
        None,
        &encode_shares(&[share(oldest_probe, "f0", ntime, 0x5000_0000)]),
    );
    p.flush(Duration::from_secs(30)).unwrap();
    let mut v = Verdicts::new(env);
    let all: Vec<u64> = trickle
        .iter()
        .chain(&probes)
        .copied()
        .chain([oldest_probe])
        .collect();
    v.wait_for(all.clone(), Duration::from_secs(60));
    let text = scrape(port);
    let f = Flood {
        sent: n,
        cached: metric(&text, "sharecheck_jobs_cached").unwrap(),
        log_bytes: metric(&text, "sharecheck_job_log_bytes").unwrap(),
        rss_before,
        rss_after: metric(&text, "process_resident_memory_bytes").unwrap(),
        peak: peak_rss(node),
        seconds,
        peak_cached,
        probes: format!(
            "newest job: {}; first job: {}",
            tally(probes.iter().map(|i| v.first(*i))),
            tally([v.first(oldest_probe)])
        ),
        trickle: tally(trickle.iter().map(|i| v.first(*i))),
    };
    let bad: Vec<_> = probes
        .iter()
        .filter(|i| v.first(**i) != Status::Accepted)
        .map(|i| (i, v.by_id[i].clone()))
        .collect();
    assert!(
        bad.is_empty(),
        "shares on the newest job not accepted after the flood: {bad:?} ({})",
        f.probes
    );
    eprintln!("flood produced in {produced_s:.1} s");
    f
}

fn stop(mut node: Proc) {
    node.signal("TERM");
    let st = node.wait_for(Duration::from_secs(15));
    assert!(st.is_some_and(|s| s.success()), "node: {}", node.log_text());
}

/// 100 000 distinct small jobs with the default bounds (`validation.max_live_jobs` 1024 and
/// `max_jobs_ahead` 8192, `kafka.max_job_log_bytes` 64 MiB): at most 9216 cached, and the
/// node's growth is what those jobs and librdkafka's prefetch take, not the 249 MB that
/// 100 001 cached jobs took.
#[test]
fn a_flood_of_distinct_jobs_is_cached_up_to_the_job_log_cap() {
    let (env, port) = env_with_metrics("bounds-flood");
    let mut node = env.node("node.log");
    let f = flood(&env, port, &mut node, 100_000, 160);
    report(&format!(
        "job flood: {} jobs sent, {} cached, job log {:.2} MB, RSS {:.0} → {:.0} MB \
         (peak {:.0} MB), caught up in {:.1} s; probes {}; trickled shares {}",
        f.sent,
        f.cached,
        f.log_bytes / MB,
        f.rss_before / MB,
        f.rss_after / MB,
        f.peak / MB,
        f.seconds,
        f.probes,
        f.trickle
    ));
    let max_live = (1024 + 8192) as f64;
    assert!(
        f.cached <= max_live && f.peak_cached <= max_live,
        "{} jobs cached ({} at most during the flood)",
        f.cached,
        f.peak_cached
    );
    assert!(f.log_bytes <= (64 << 20) as f64, "{} bytes", f.log_bytes);
    // 1024 jobs of ~2 KB each (job, midstate and per-extranonce tails) in the log, the same
    // shared by the 4 validators, their maps: a few MB. librdkafka's prefetch of the jobs
    // topic (25 MB here) comes on top; 9216 jobs (1024 live + 8192 ahead) measured +83 MB
    // (peak +92 MB). 150 MB is well under the 249 MB of the unbounded log.
    let growth = f.rss_after - f.rss_before;
    assert!(growth < 150.0 * MB, "RSS grew {:.0} MB", growth / MB);
    let peak = f.peak - f.rss_before;
    assert!(
        peak < 150.0 * MB,
        "RSS grew {:.0} MB at its peak",
        peak / MB
    );
    stop(node);
}

/// 10 000 jobs with 16 KiB of coinbase parts each (164 MB of jobs), with
/// `kafka.max_job_log_bytes` 32 MiB and `validation.max_live_jobs` 4096 (so that the byte
/// cap bites first: 4096 such jobs are 67 MB). Twice: with librdkafka's default prefetch
/// (what a deployment runs), and with the jobs reader's prefetch cut to 4 MiB, which leaves
/// what sharecheck itself holds.
#[test]
fn a_flood_of_big_jobs_is_cached_up_to_max_job_log_bytes() {
    let cap = 32usize << 20;
    let max_live = 4096usize;
    let coinbase = 16 * 1024;
    let per_job = job_bytes(&job("f9999", coinbase, 0, false)) as f64;
    // Jobs alive at once: the log holds at most the cap; validators that took the jobs as
    // they came keep up to max_live_jobs of them (the same ones as the log while it has
    // them), and the log may run up to its cap ahead of what they took: 4096 × 16.4 KB +
    // 32 MiB = 101 MB at most. RSS is the high-water mark of that: memory freed is not given
    // back (replacing every big job with 5000 small ones left RSS where it was), and freed
    // jobs leave holes among the live ones, so half as much again.
    let held = max_live as f64 * per_job + cap as f64;
    let mut figures = Vec::new();
    for (what, consumer, librdkafka) in [
        ("librdkafka defaults", "", PREFETCH + 1048576.0),
        (
            "prefetch 4 MiB",
            "\"queued.max.messages.kbytes\" = \"4096\"\n\"fetch.max.bytes\" = \"1048576\"",
            4096.0 * 1024.0 + 1048576.0,
        ),
    ] {
        let (env, port) = env_with_metrics("bounds-bigjobs");
        set_keys(&env, "kafka", &format!("max_job_log_bytes = {cap}"));
        set_keys(&env, "validation", &format!("max_live_jobs = {max_live}"));
        if !consumer.is_empty() {
            set_keys(&env, "kafka.consumer", consumer);
        }
        let mut node = env.node("node.log");
        let f = flood(&env, port, &mut node, 10_000, coinbase);
        figures.push(format!(
            "{what}: {} cached (at most {} during the flood), job log {:.2} MB, RSS {:.0} → {:.0} MB \
             (peak {:.0} MB), caught up in {:.1} s, probes {}, trickled shares {}",
            f.cached,
            f.peak_cached,
            f.log_bytes / MB,
            f.rss_before / MB,
            f.rss_after / MB,
            f.peak / MB,
            f.seconds,
            f.probes,
            f.trickle
        ));
        assert!(f.log_bytes <= cap as f64, "{what}: {} bytes", f.log_bytes);
        let most = (cap as f64 / per_job).floor();
        assert!(
            f.cached <= most && f.peak_cached <= most,
            "{what}: {} jobs cached ({} during the flood), the cap holds {most}",
            f.cached,
            f.peak_cached
        );
        // librdkafka may hold up to queued.max.messages.kbytes of the jobs topic, and one
        // fetch (max.partition.fetch.bytes, 1 MiB) beside it; 20 MB for the rest.
        let bound = 1.5 * held + librdkafka + 20.0 * MB;
        let growth = f.rss_after - f.rss_before;
        assert!(
            growth < bound,
            "{what}: RSS grew {:.0} MB, bound {:.0} MB",
            growth / MB,
            bound / MB
        );
        stop(node);
    }
    report(&format!(
        "big jobs: 10000 jobs of {:.1} KB sent ({:.0} MB), max_job_log_bytes {:.1} MB, \
         max_live_jobs {max_live}; {}",
        per_job / 1000.0,
        10_000.0 * per_job / MB,
        cap as f64 / MB,
        figures.join("; ")
    ));
}

/// Samples a node's /metrics every 200 ms until dropped: the most a metric (summed over
/// its series) said.
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<f64>>,
}

impl Sampler {
    fn start(port: u16, name: &'static str) -> Sampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut most = 0.0f64;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(metric_sum(&scrape(port), name));
                std::thread::sleep(Duration::from_millis(200));
            }
            most
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    fn most(mut self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Unique shares on one partition with `validation.max_seen_entries` 200 000: job A gets
/// 150 000, then job B 250 000. At the cap A is retired early (its set freed, its shares
/// `stale` from then on), and once B alone holds the cap its further shares are `stale`.
/// Copies of shares (other ids, the same work) are sent after each phase: none is ever
/// `accepted`. The duplicate sets stay at the cap (the issue: 2 M unique shares, +164 MB, no
/// cap and no gauge).
#[test]
fn the_duplicate_sets_stay_at_max_seen_entries_and_no_copy_is_accepted() {
    let cap = 200_000u32;
    let (env, port) = env_with_metrics("bounds-dups");
    set_keys(&env, "validation", &format!("max_seen_entries = {cap}"));
    let mut node = env.node("node.log");
    wait_ready(port, &mut node, Duration::from_secs(60));
    let rss_before = rss(port);
    let p = producer(&env);
    let ntime = now_s();
    for j in [job("A", 200, ntime, true), job("B", 200, ntime, false)] {
        produce(&p, &env.topic("jobs"), None, None, &encode_job(&j));
        p.flush(Duration::from_secs(30)).unwrap();
    }
    let sampler = Sampler::start(port, "sharecheck_duplicate_entries");
    let t0 = Instant::now();
    let shares_topic = env.topic("shares");
    let mut next_id = 1u64;
    // (job, work n) of every share sent, by id, and the ids of the copies.
    let mut sent: HashMap<u64, (&str, u32)> = HashMap::new();
    let mut copies: Vec<(u64, &str)> = Vec::new();
    let mut send = |shares: &[(&'static str, u32)], copy: Option<&'static str>| {
        for chunk in shares.chunks(1000) {
            let recs: Vec<_> = chunk
                .iter()
                .map(|(j, n)| {
                    let id = next_id;
                    next_id += 1;
                    sent.insert(id, (j, *n));
                    if let Some(what) = copy {
                        copies.push((id, what));
                    }
                    share(id, j, ntime, *n)
                })
                .collect();
            produce(&p, &shares_topic, Some(0), None, &encode_shares(&recs));
        }
    };
    let range = |j: &'static str, from: u32, n: u32| -> Vec<(&'static str, u32)> {
        (from..from + n).map(|k| (j, k)).collect()
    };
    // Phase 1: 150 000 on A; copies of 1000 of them.
    send(&range("A", 0, 150_000), None);
    send(&range("A", 0, 1000), Some("A, before the cap"));
    // Phase 2: 100 000 on B (the cap is reached after 50 000: A is retired); copies of A's
    // and of B's.
    send(&range("B", 1_000_000, 100_000), None);
    send(&range("A", 1000, 1000), Some("A, retired"));
    send(&range("B", 1_000_000, 1000), Some("B, after A retired"));
    // Phase 3: 150 000 more on B: 100 000 fit, then B alone holds the cap.
    send(&range("B", 2_000_000, 150_000), None);
    send(&range("B", 1_050_000, 1000), Some("B, phase 2"));
    send(&range("B", 2_000_000, 1000), Some("B, accepted in phase 3"));
    send(&range("B", 2_149_000, 1000), Some("B, stale in phase 3"));
    p.flush(Duration::from_secs(60)).unwrap();
    let produced_s = t0.elapsed().as_secs_f64();
    let mut v = Verdicts::new(&env);
    v.wait_for(sent.keys().copied(), Duration::from_secs(120));
    let seconds = t0.elapsed().as_secs_f64();
    let text = scrape(port);
    let entries = metric_sum(&text, "sharecheck_duplicate_entries");
    let most = sampler.most().max(entries);
    let rss_after = metric(&text, "process_resident_memory_bytes").unwrap();
    let peak = peak_rss(&node);
    let copy_ids: std::collections::HashSet<u64> = copies.iter().map(|c| c.0).collect();
    let firsts = |j: &str| {
        tally(
            sent.iter()
                .filter(|(id, (jj, _))| *jj == j && !copy_ids.contains(id))
                .map(|(id, _)| v.first(*id)),
        )
    };
    let mut by_kind: std::collections::BTreeMap<&str, Vec<Status>> = Default::default();
    for (id, what) in &copies {
        by_kind.entry(what).or_default().push(v.first(*id));
    }
    let copies_text: Vec<String> = by_kind
        .iter()
        .map(|(k, s)| format!("{k}: {}", tally(s.iter().copied())))
        .collect();
    report(&format!(
        "duplicate sets: {} unique shares on one partition, max_seen_entries {cap}: entries \
         {entries} now, at most {most} seen; job A {}; job B {}; copies: {}; RSS {:.0} → {:.0} MB \
         (peak {:.0} MB); produced in {produced_s:.1} s, all verdicts in {seconds:.1} s",
        sent.len() - copies.len(),
        firsts("A"),
        firsts("B"),
        copies_text.join("; "),
        rss_before / MB,
        rss_after / MB,
        peak / MB,
    ));
    // Never a copy accepted; the copies of shares still in a live set are duplicates, the
    // others stale.
    let accepted: Vec<_> = copies
        .iter()
        .filter(|(id, _)| v.by_id[id].contains(&Status::Accepted))
        .collect();
    assert!(accepted.is_empty(), "copies accepted: {}", accepted.len());
    let want = |what: &str, s: Status| {
        let got = &by_kind[what];
        assert!(
            got.iter().all(|x| *x == s),
            "copies of {what}: {}, want all {s:?}",
            tally(got.iter().copied())
        );
    };
    want("A, before the cap", Status::Duplicate);
    want("A, retired", Status::Stale);
    want("B, after A retired", Status::Duplicate);
    want("B, phase 2", Status::Duplicate);
    want("B, accepted in phase 3", Status::Duplicate);
    want("B, stale in phase 3", Status::Stale);
    // The first shares: A's and B's first 200 000 accepted (A retired at the cap made room),
    // B's last 50 000 stale.
    let count = |j: &str, s: Status| {
        sent.iter()
            .filter(|(id, (jj, _))| *jj == j && !copy_ids.contains(id) && v.first(**id) == s)
            .count()
    };
    assert_eq!(
        count("A", Status::Accepted),
        150_000,
        "job A: {}",
        firsts("A")
    );
    assert_eq!(
        count("B", Status::Accepted),
        200_000,
        "job B: {}",
        firsts("B")
    );
    assert_eq!(count("B", Status::Stale), 50_000, "job B: {}", firsts("B"));
    // The gauge: one partition's sets, at most the cap (per partition: at most cap × the
    // partitions of the node, 4 here).
    assert!(
        most <= cap as f64 && most <= (cap as f64) * env.partitions as f64,
        "duplicate entries {most}, cap {cap} per partition"
    );
    assert!(entries > 0.0, "the gauge says {entries}");
    // About 80 bytes an entry (the config's figure) at the cap, librdkafka's prefetch of the
    // shares topic (52 MB here, 64 MiB at most), verdicts waiting for the broker
    // (kafka.max_unacked_batches × 8192 shares, 1 MB), 20 MB for the rest. The issue's
    // unbounded 2 M entries were 164 MB.
    let bound = cap as f64 * 80.0 + PREFETCH + 20.0 * MB;
    for (what, growth) in [
        ("now", rss_after - rss_before),
        ("at its peak", peak - rss_before),
    ] {
        assert!(
            growth < bound,
            "RSS grew {:.0} MB {what}, bound {:.0} MB",
            growth / MB,
            bound / MB
        );
    }
    stop(node);
}

fn admin(env: &Env) -> rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> {
    env.client_config().create().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `message.timestamp.type` of one of the env's topics, as the broker describes it.
fn timestamp_type(env: &Env, which: &str) -> String {
    use rdkafka::admin::{AdminOptions, ResourceSpecifier};
    let topic = env.topic(which);
    let d = runtime()
        .block_on(admin(env).describe_configs(
            &[ResourceSpecifier::Topic(&topic)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
        ))
        .unwrap();
    d[0].as_ref()
        .ok()
        .and_then(|c| c.get("message.timestamp.type"))
        .and_then(|e| e.value.clone())
        .unwrap_or_default()
}

/// Makes the env's shares and jobs topics CreateTime (as tests/kafka_e2e.rs does), and waits
/// until the broker describes them so.
fn make_create_time(env: &Env) {
    use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};
    let (shares, jobs) = (env.topic("shares"), env.topic("jobs"));
    let alter: Vec<_> = [&shares, &jobs]
        .iter()
        .map(|t| {
            AlterConfig::new(ResourceSpecifier::Topic(t))
                .set("message.timestamp.type", "CreateTime")
        })
        .collect();
    let r = runtime()
        .block_on(admin(env).alter_configs(&alter, &AdminOptions::new()))
        .unwrap();
    assert!(r.iter().all(|x| x.is_ok()), "{r:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while ["shares", "jobs"]
        .iter()
        .any(|w| timestamp_type(env, w) != "CreateTime")
    {
        assert!(Instant::now() < deadline, "the broker kept LogAppendTime");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends a JSON Lines file as `send` does (jobs acknowledged before and after, shares in
/// batches of 20 per miner session), each share message with the timestamp `stamp` gives
/// its index (None: the producer's clock). Returns the share messages sent.
fn send_stamped(env: &Env, file: &std::path::Path, stamp: &dyn Fn(usize) -> Option<i64>) -> usize {
    use sharecheck::wire::jsonl::{parse_line, Line};
    let p = producer(env);
    let (jobs, shares) = (env.topic("jobs"), env.topic("shares"));
    let mut open: Vec<(Vec<u8>, Vec<ShareRecord>)> = Vec::new();
    let mut messages = 0;
    let flush = |open: &mut Vec<(Vec<u8>, Vec<ShareRecord>)>, messages: &mut usize| {
        for (key, recs) in open.drain(..) {
            let payload = encode_shares(&recs);
            loop {
                let mut r = BaseRecord::<[u8], [u8]>::to(&shares)
                    .key(&key[..])
                    .payload(&payload[..]);
                if let Some(t) = stamp(*messages) {
                    r = r.timestamp(t);
                }
                match p.send(r) {
                    Ok(()) => break,
                    Err((e, _)) => {
                        assert!(
                            e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull),
                            "{e}"
                        );
                        p.poll(Duration::from_millis(50));
                    }
                }
            }
            *messages += 1;
        }
    };
    for line in std::fs::read_to_string(file).unwrap().lines() {
        match parse_line(line) {
            Line::Job(Ok(j)) => {
                flush(&mut open, &mut messages);
                p.flush(Duration::from_secs(30)).unwrap();
                produce(&p, &jobs, None, None, &encode_job(&j));
                p.flush(Duration::from_secs(30)).unwrap();
                // Shares after a job are stamped after it (ms), as with send.
                std::thread::sleep(Duration::from_millis(2));
            }
            Line::Share(r) => {
                // A share line malformed in JSON travels as a record of no kind with its
                // id, as send sends it, and gets its malformed verdict from the node.
                let rec = match r {
                    Ok(rec) => rec,
                    Err(v) => match v.id {
                        Some(id) => {
                            let mut rec = <ShareRecord as bytemuck::Zeroable>::zeroed();
                            rec.id = id.to_le_bytes();
                            rec
                        }
                        None => continue,
                    },
                };
                let key = sharecheck::kafka::send::share_key(&rec);
                match open.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) => v.push(rec),
                    None => open.push((key, vec![rec])),
                }
                if open.iter().any(|(_, v)| v.len() >= 20) {
                    flush(&mut open, &mut messages);
                }
            }
            Line::Job(Err(_)) | Line::Blank => {}
        }
    }
    flush(&mut open, &mut messages);
    p.flush(Duration::from_secs(30)).unwrap();
    messages
}

/// The shares of `want` (verify's verdicts) whose last verdict from the node differs, as
/// "verify → node" transitions with their counts.
fn differences(v: &Verdicts, want: &[serde_json::Value]) -> (usize, String) {
    let mut m: std::collections::BTreeMap<String, usize> = Default::default();
    let mut n = 0;
    for w in want {
        let Some(id) = w["id"].as_u64() else { continue };
        let got = serde_json::to_value(v.last(id)).unwrap();
        if got != w["status"] {
            n += 1;
            *m.entry(format!(
                "{} → {}",
                w["status"].as_str().unwrap(),
                got.as_str().unwrap()
            ))
            .or_default() += 1;
        }
    }
    let text = m
        .iter()
        .map(|(k, c)| format!("{k} {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    (n, if text.is_empty() { "none".into() } else { text })
}

fn ids(want: &[serde_json::Value]) -> Vec<u64> {
    want.iter().filter_map(|w| w["id"].as_u64()).collect()
}

/// When a share message of a stamped run is stamped: 1970 (1 s after the epoch), 50 min
/// ahead, or the two in turn.
#[derive(Clone, Copy)]
enum Stamps {
    Epoch,
    Future,
    Both,
}

/// A generated workload whose share messages are stamped as `stamps` says, sent before a
/// node starts on a fresh env (CreateTime topics with `create_time`); its verdicts against
/// verify's. Returns (verdicts that differ, the differences, seconds, shares, messages).
fn stamped_run(
    test: &str,
    create_time: bool,
    stamps: Stamps,
) -> (usize, String, f64, usize, usize) {
    let t0 = Instant::now();
    let env = Env::new(test, "");
    let want_type = if create_time {
        make_create_time(&env);
        "CreateTime"
    } else {
        "LogAppendTime"
    };
    for which in ["shares", "jobs"] {
        assert_eq!(timestamp_type(&env, which), want_type, "{which} topic");
    }
    let file = env.gen("s.jsonl", &["--shares", "1500", "--seed", "51"]);
    let want = env.verify(&file);
    let future = sharecheck::kafka::now_ms() + 50 * 60 * 1000;
    let messages = send_stamped(&env, &file, &|i| {
        Some(match (stamps, i % 2) {
            (Stamps::Epoch, _) | (Stamps::Both, 0) => 1000,
            _ => future,
        })
    });
    let node = env.node("node.log");
    let mut v = Verdicts::new(&env);
    v.wait_for(ids(&want), Duration::from_secs(60));
    let (n, text) = differences(&v, &want);
    let log = node.log_text();
    stop(node);
    if create_time {
        assert!(
            log.contains("message.timestamp.type=CreateTime"),
            "no warning about the CreateTime topics:\n{log}"
        );
    }
    (n, text, t0.elapsed().as_secs_f64(), want.len(), messages)
}

/// Share messages stamped 1970 and 50 min ahead on the topics `topics create` makes (the
/// test helpers' topics: LogAppendTime, checked): the broker's append time replaces the
/// stamps, and every verdict is verify's. The same on CreateTime topics is measured too
/// (the node warns about them, and the producer's stamps decide): no verdict there may be
/// `accepted` where verify's is not (the issue: shares stamped 1970 were accepted).
#[test]
fn shares_stamped_in_1970_or_the_future_get_the_verdicts_of_verify() {
    let (differ, how, secs, shares, messages) = stamped_run("bounds-stamps", false, Stamps::Both);
    let mut ct = Vec::new();
    for (what, stamps) in [
        ("1970", Stamps::Epoch),
        ("+50 min", Stamps::Future),
        ("both in turn", Stamps::Both),
    ] {
        let (n, how, secs, _, _) = stamped_run("bounds-stamps-ct", true, stamps);
        ct.push((what, n, how, secs));
    }
    report(&format!(
        "stamps: {shares} shares in {messages} messages stamped 1970 and +50 min in turn; \
         LogAppendTime topics: {differ} verdicts differ from verify ({how}, {secs:.1} s); \
         CreateTime topics: {}",
        ct.iter()
            .map(|(what, n, how, secs)| format!("{what}: {n} differ ({how}, {secs:.1} s)"))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    assert_eq!(differ, 0, "LogAppendTime: {how}");
    for (what, _, how, _) in &ct {
        assert!(
            !how.contains("→ accepted"),
            "CreateTime, {what}: a share accepted that verify refuses ({how})"
        );
    }
}

/// A job stamped 50 min ahead, then a node restart in the middle of a job's shares: the
/// stamp does not expire the jobs before it in the job log, so the restarted node still has
/// them and the shares after the restart get verify's verdicts (the issue: 87 `stale` became
/// `unknown_job`). Measured on CreateTime topics too.
#[test]
fn a_job_stamped_in_the_future_then_a_restart_leaves_no_unknown_job() {
    let run = |env: &Env, port: u16| -> (usize, String, usize, f64) {
        let t0 = Instant::now();
        let file = env.gen(
            "s.jsonl",
            &[
                "--shares",
                "2000",
                "--seed",
                "53",
                "--shares-per-job",
                "500",
            ],
        );
        let want = env.verify(&file);
        // Split in the middle of the third job's shares.
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut shares = 0;
        let at = lines
            .iter()
            .position(|l| {
                shares += l.starts_with("{\"share\"") as usize;
                shares == 1250
            })
            .unwrap()
            + 1;
        let (first, second) = lines.split_at(at);
        let halves = [env.dir.join("first.jsonl"), env.dir.join("second.jsonl")];
        std::fs::write(&halves[0], first.join("\n") + "\n").unwrap();
        std::fs::write(&halves[1], second.join("\n") + "\n").unwrap();
        // The first node validates the first half and takes the job stamped 50 min ahead;
        // then it is restarted and the second half is sent.
        let mut node = env.node("node1.log");
        wait_ready(port, &mut node, Duration::from_secs(60));
        env.send(&halves[0], &["--batch", "20"]);
        let first_want = env.verify(&halves[0]);
        let mut v = Verdicts::new(env);
        v.wait_for(ids(&first_want), Duration::from_secs(60));
        let p = producer(env);
        let future = sharecheck::kafka::now_ms() + 50 * 60 * 1000;
        let j = job("future", 200, now_s(), false);
        produce(&p, &env.topic("jobs"), None, Some(future), &encode_job(&j));
        p.flush(Duration::from_secs(30)).unwrap();
        let jobs = first.iter().filter(|l| l.starts_with("{\"job\"")).count() + 1;
        wait_metric(
            port,
            "sharecheck_jobs_received_total",
            jobs as f64,
            Duration::from_secs(30),
        );
        stop(node);
        env.send(&halves[1], &["--batch", "20"]);
        let mut node = env.node("node2.log");
        wait_ready(port, &mut node, Duration::from_secs(60));
        v.wait_for(ids(&want), Duration::from_secs(60));
        stop(node);
        let (n, how) = differences(&v, &want);
        let unknown = ids(&want)
            .into_iter()
            .filter(|i| v.last(*i) == Status::UnknownJob)
            .count();
        let want_unknown = want.iter().filter(|w| w["status"] == "unknown_job").count();
        (
            n,
            format!("{how}; unknown_job {unknown}, verify's {want_unknown}"),
            want.len(),
            t0.elapsed().as_secs_f64(),
        )
    };
    let (env, port) = env_with_metrics("bounds-future-job");
    assert_eq!(timestamp_type(&env, "jobs"), "LogAppendTime");
    let (differ, how, shares, secs) = run(&env, port);
    let (created, ct_port) = env_with_metrics("bounds-future-job-ct");
    make_create_time(&created);
    let (ct_differ, ct_how, _, ct_secs) = run(&created, ct_port);
    report(&format!(
        "future job + restart: {shares} shares, the restart after 1250; LogAppendTime topics: \
         {differ} verdicts differ from verify ({how}, {secs:.1} s); CreateTime topics: \
         {ct_differ} differ ({ct_how}, {ct_secs:.1} s)"
    ));
    assert_eq!(differ, 0, "LogAppendTime: {how}");
}
