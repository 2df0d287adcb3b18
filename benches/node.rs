//! The validator node's CPU work per share outside hashing and Kafka: decoding a share
//! message, checks 1–6 (job lookup, duplicate sets, targets), check 7 on given hashes and
//! encoding the verdict message. On a node this runs once per share beside librdkafka and the
//! backend, so its cost bounds what one node takes from Kafka. The baseline measured in the
//! same run is the pass-through's work on the same messages: one copy of each payload.
//! Run: `cargo bench --bench node` (add `-- header` or `-- stratum` to filter).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use sharecheck::gen::{generate, GenConfig, GenMode};
use sharecheck::model::validate::{Batch, ValidationConfig, Validator};
use sharecheck::model::Job;
use sharecheck::wire::binary::{decode_shares, encode_shares, encode_verdicts, ShareRecord};
use sharecheck::wire::jsonl;
use std::collections::HashMap;
use std::time::Duration;

/// A generated workload as the node sees it: jobs with their publish stamps, and share
/// messages of up to `per_message` shares of one miner session each, with their stamps.
struct Workload {
    jobs: Vec<(Job, i64)>,
    messages: Vec<(Vec<u8>, i64)>,
    shares: usize,
}

type Open = HashMap<Vec<u8>, Vec<ShareRecord>>;

/// Writes every open message, as the sender does before a job.
fn flush(open: &mut Open, ts: &mut i64, messages: &mut Vec<(Vec<u8>, i64)>) {
    let mut keys: Vec<_> = open.keys().cloned().collect();
    keys.sort();
    for k in keys {
        let recs = open.remove(&k).unwrap_or_default();
        *ts += 1;
        messages.push((encode_shares(&recs), *ts));
    }
}

fn workload(mode: GenMode, shares: u64, per_message: usize) -> Workload {
    let g = GenConfig {
        shares,
        mode,
        ..Default::default()
    };
    let mut buf = Vec::new();
    generate(&g, &mut buf).expect("generate");
    let text = String::from_utf8(buf).expect("utf-8");
    let (mut jobs, mut messages) = (Vec::new(), Vec::new());
    let mut open: Open = HashMap::new();
    // One millisecond per share message: jobs fall between the shares they precede.
    let mut ts = 1_750_000_000_000i64;
    let mut n = 0;
    for line in text.lines() {
        match jsonl::parse_line(line) {
            jsonl::Line::Job(Ok(j)) => {
                flush(&mut open, &mut ts, &mut messages);
                ts += 1;
                jobs.push((j, ts));
            }
            jsonl::Line::Share(Ok(r)) => {
                n += 1;
                let key = sharecheck::kafka::send::share_key(&r);
                let v = open.entry(key.clone()).or_default();
                v.push(r);
                if v.len() >= per_message {
                    let recs = open.remove(&key).unwrap_or_default();
                    ts += 1;
                    messages.push((encode_shares(&recs), ts));
                }
            }
            _ => {}
        }
    }
    flush(&mut open, &mut ts, &mut messages);
    eprintln!(
        "{n} shares in {} messages of up to {per_message}, {} jobs",
        messages.len(),
        jobs.len()
    );
    Workload {
        jobs,
        messages,
        shares: n,
    }
}

fn run_node_work(v: &mut Validator, w: &Workload) -> usize {
    let mut batch = Batch::with_capacity(w.shares);
    let mut next_job = 0;
    let mut out = 0;
    let mut per_message = Vec::with_capacity(w.messages.len());
    for (payload, ts) in &w.messages {
        while next_job < w.jobs.len() && w.jobs[next_job].1 < *ts {
            let (j, jts) = &w.jobs[next_job];
            let _ = v.add_job_at(j.clone(), *jts);
            next_job += 1;
        }
        let recs = decode_shares(payload).expect("generated message").to_vec();
        for r in &recs {
            v.check_at(r, *ts, &mut batch);
        }
        per_message.push(recs.len());
    }
    // Check 7 costs the same for accepted and low_difficulty shares; a block also rebuilds
    // its header, which is rare and left out here: every hash is above every target.
    let hashes = vec![[u32::MAX; 8]; batch.tasks.len()];
    let verdicts = batch.finish(&hashes);
    let mut at = 0;
    for n in per_message {
        out += encode_verdicts(&verdicts[at..at + n]).len();
        at += n;
    }
    out
}

fn group(c: &mut Criterion, name: &str, mode: GenMode) {
    let mut g = c.benchmark_group(format!("node/{name}"));
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    g.sample_size(20);
    for per_message in [10usize, 100] {
        let w = workload(mode, 20_000, per_message);
        g.throughput(Throughput::Elements(w.shares as u64));
        g.bench_with_input(
            BenchmarkId::new("node", per_message),
            &per_message,
            |b, _| {
                b.iter_batched(
                    || Validator::new(ValidationConfig::default()),
                    |mut v| run_node_work(&mut v, &w),
                    BatchSize::LargeInput,
                )
            },
        );
        g.bench_with_input(
            BenchmarkId::new("baseline:copy", per_message),
            &per_message,
            |b, _| {
                b.iter(|| {
                    w.messages
                        .iter()
                        .map(|(p, _)| std::hint::black_box(p.to_vec()).len())
                        .sum::<usize>()
                })
            },
        );
    }
    g.finish();
}

fn header(c: &mut Criterion) {
    group(c, "header", GenMode::Header);
}

fn stratum(c: &mut Criterion) {
    group(c, "stratum", GenMode::Stratum);
}

criterion_group!(benches, header, stratum);
criterion_main!(benches);
