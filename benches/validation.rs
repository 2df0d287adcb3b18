//! The whole per-share validation of Stratum V2 extended shares: sharecheck's (record checks,
//! job lookup, checks 1-6 with the duplicate sets, hashing, check 7, the verdict message)
//! beside SRI's server-side `ExtendedChannel::validate_share`, on the same work: one extended
//! channel, one active job from SRI's job factory (a ~200-byte coinbase, a 12-deep merkle
//! path, version rolling allowed) and 4096 shares with random nonces and extranonces, about
//! half of them meeting the share target and none the network target. Before timing, both
//! sides must give every share the same verdict (and the same hash when accepted).
//! Run: `cargo bench --bench validation`.

use binary_sv2::{Seq0255Owned, U256Owned};
use bitcoin::hashes::Hash as _;
use bitcoin::{Amount, CompactTarget, ScriptBuf, Target, TxOut};
use channels_sv2::extranonce_manager::ExtranonceAllocator;
use channels_sv2::server::extended::ExtendedChannel;
use channels_sv2::server::share_accounting::{ShareValidationError, ShareValidationResult};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mining_sv2::{NewExtendedMiningJobOwned, SubmitSharesExtendedOwned};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sharecheck::backend::cpu::CpuBackend;
use sharecheck::backend::Backend;
use sharecheck::bench::{validate_workload, WorkItem, Workload};
use sharecheck::model::{Batch, Status, ValidationConfig, Validator, Verdict};
use sharecheck::wire::jsonl::{parse_line, Line};
use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;
use template_distribution_sv2::{NewTemplateOwned, SetNewPrevHashOwned as TdpSetNewPrevHash};

#[path = "../tests/sri_support/mod.rs"]
mod sri_support;
use sri_support::{add_extended_fields, hex, job_fields, ROLLING_MASK};

/// Shares per iteration.
const N: usize = 4096;
/// The job's merkle path depth.
const DEPTH: usize = 12;
/// A mainnet-like network target (about 2^180): no share is a block.
const NBITS: u32 = 0x1703_4219;
/// The job's min_ntime (2025-06-15): in the past, so sharecheck's wall-clock bound never bites.
const MIN_NTIME: u32 = 1_750_000_000;
const REWARD: u64 = 312_500_000;
const HEIGHT: u32 = 900_000;
const CHANNEL: u32 = 1;
/// The channel's full extranonce (prefix + rollable part).
const EXTRANONCE: u8 = 16;

/// What a fresh SRI channel is built from, and the shares both sides judge.
struct Fixture {
    target: Target,
    template: NewTemplateOwned,
    reward: Vec<TxOut>,
    tip: TdpSetNewPrevHash,
    prefix: Vec<u8>,
    job: NewExtendedMiningJobOwned,
    shares: Vec<SubmitSharesExtendedOwned>,
}

/// A fresh SRI channel with the fixture's job active (SetTarget, a future template, then the
/// SetNewPrevHash activating it), and its extranonce prefix.
fn sri_channel(
    target: Target,
    template: &NewTemplateOwned,
    reward: &[TxOut],
    tip: &TdpSetNewPrevHash,
) -> (ExtendedChannel, Vec<u8>) {
    let mut alloc = ExtranonceAllocator::new(vec![0x5c, 0x42], EXTRANONCE, 256).unwrap();
    let rollable = alloc.rollable_extranonce_size();
    let p = alloc.allocate_extended(rollable as usize).unwrap();
    let prefix = p.as_bytes().to_vec();
    let mut c = ExtendedChannel::new_for_pool(
        CHANNEL,
        "u".into(),
        p,
        Target::from_le_bytes([0xff; 32]),
        1.0,
        true,
        rollable as u16,
        100,
        100.0,
        "sharecheck-bench".into(),
        None,
    )
    .unwrap();
    assert_eq!(c.get_full_extranonce_size(), EXTRANONCE as usize);
    c.set_target(target).unwrap();
    c.on_new_template(template.clone(), reward.to_vec())
        .unwrap();
    c.on_set_new_prev_hash(tip.clone()).unwrap();
    (c, prefix)
}

fn fresh_channel(fx: &Fixture) -> ExtendedChannel {
    let (c, prefix) = sri_channel(fx.target, &fx.template, &fx.reward, &fx.tip);
    assert_eq!(prefix, fx.prefix);
    assert_eq!(c.get_active_job().unwrap().get_job_id(), fx.job.job_id);
    c
}

fn fixture() -> Fixture {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5632_7661_6c69);
    // The share target: 2^255 - 1, so about half of all hashes meet it.
    let mut be = [0xffu8; 32];
    be[0] = 0x7f;
    let target = Target::from_be_bytes(be);
    // The template's outputs: the witness commitment and a second (zero-value) P2WPKH.
    let mut outputs = vec![0u8; 8];
    outputs.extend([38, 0x6a, 36, 0xaa, 0x21, 0xa9, 0xed]);
    outputs.extend((0..32).map(|_| rng.random::<u8>()));
    outputs.extend([0u8; 8]);
    outputs.extend([22, 0, 20]);
    outputs.extend((0..20).map(|_| rng.random::<u8>()));
    let path: Vec<U256Owned> = (0..DEPTH)
        .map(|_| rng.random::<[u8; 32]>().into())
        .collect();
    let h = HEIGHT;
    let template = NewTemplateOwned {
        template_id: 1,
        future_template: true,
        version: 0x2000_0000,
        coinbase_tx_version: 2,
        coinbase_prefix: vec![3, h as u8, (h >> 8) as u8, (h >> 16) as u8]
            .try_into()
            .unwrap(),
        coinbase_tx_input_sequence: 0xffff_fffe,
        coinbase_tx_value_remaining: REWARD,
        coinbase_tx_outputs_count: 2,
        coinbase_tx_outputs: outputs.try_into().unwrap(),
        coinbase_tx_locktime: h,
        merkle_path: Seq0255Owned::new(path).unwrap(),
    };
    let mut script = vec![0, 20];
    script.extend((0..20).map(|_| rng.random::<u8>()));
    let reward = vec![TxOut {
        value: Amount::from_sat(REWARD),
        script_pubkey: ScriptBuf::from(script),
    }];
    let network = Target::from_compact(CompactTarget::from_consensus(NBITS));
    let prev_hash: [u8; 32] = rng.random();
    let tip = TdpSetNewPrevHash {
        template_id: 1,
        prev_hash: prev_hash.into(),
        header_timestamp: MIN_NTIME,
        n_bits: NBITS,
        target: network.to_le_bytes().into(),
    };
    let (c, prefix) = sri_channel(target, &template, &reward, &tip);
    let job = c.get_active_job().unwrap().get_job_message().clone();
    assert_eq!(job.min_ntime.clone().into_inner(), Some(MIN_NTIME));
    assert!(job.version_rolling_allowed);
    let rollable = EXTRANONCE as usize - prefix.len();
    let mut nonces = HashSet::new();
    let shares = (0..N)
        .map(|i| {
            let nonce = loop {
                let n: u32 = rng.random();
                if nonces.insert(n) {
                    break n;
                }
            };
            let extranonce: Vec<u8> = (0..rollable).map(|_| rng.random()).collect();
            SubmitSharesExtendedOwned {
                channel_id: CHANNEL,
                sequence_number: i as u32 + 1,
                job_id: job.job_id,
                nonce,
                ntime: MIN_NTIME + rng.random_range(0..600),
                version: job.version ^ (rng.random::<u32>() & ROLLING_MASK),
                extranonce: extranonce.try_into().unwrap(),
            }
        })
        .collect();
    Fixture {
        target,
        template,
        reward,
        tip,
        prefix,
        job,
        shares,
    }
}

/// The same job and shares as sharecheck's JSON Lines, read into a workload.
fn workload(fx: &Fixture) -> Workload {
    let j = &fx.job;
    let prev_hash = fx.tip.prev_hash.to_array();
    let mut fields = job_fields(j.job_id, &prev_hash, j.version, NBITS, MIN_NTIME, true);
    add_extended_fields(&mut fields, j, EXTRANONCE as usize);
    let job = json!({ "job": fields });
    let target = hex(&fx.target.to_be_bytes());
    let prefix = hex(&fx.prefix);
    let mut items = Vec::with_capacity(N + 1);
    match parse_line(&job.to_string()) {
        Line::Job(Ok(job)) => items.push(WorkItem::Job(job)),
        _ => panic!("sharecheck refused the job"),
    }
    for (i, s) in fx.shares.iter().enumerate() {
        let line = json!({"share": {
            "id": i + 1, "kind": "sv2_extended", "channel_id": s.channel_id,
            "sequence_number": s.sequence_number, "job_id": s.job_id,
            "extranonce_prefix": prefix, "extranonce": hex(s.extranonce.as_bytes()),
            "ntime": s.ntime, "nonce": s.nonce, "version": s.version, "target": target,
        }});
        match parse_line(&line.to_string()) {
            Line::Share(Ok(r)) => items.push(WorkItem::Share(r)),
            _ => panic!("sharecheck refused share {}", i + 1),
        }
    }
    Workload { items, shares: N }
}

/// sharecheck's verdicts on `w`: what `validate_workload` computes before encoding them.
fn sharecheck_verdicts(backend: &CpuBackend, w: &Workload) -> Vec<Verdict> {
    let mut v = Validator::new(ValidationConfig::default());
    let mut batch = Batch::with_capacity(w.shares);
    for item in &w.items {
        match item {
            WorkItem::Job(j) => v.add_job(j.clone()).expect("sharecheck takes the job"),
            WorkItem::Share(r) => {
                v.check(r, &mut batch);
            }
        }
    }
    let mut out = vec![[0u32; 8]; batch.tasks.len()];
    backend
        .hash(&batch.jobs, &batch.tasks, &mut out)
        .expect("cpu backend");
    batch.finish(&out)
}

/// Both sides give every share the same verdict, and the same hash when it is accepted;
/// returns how many were accepted.
fn agree(fx: &Fixture, backend: &CpuBackend, w: &Workload) -> usize {
    let mut c = fresh_channel(fx);
    let verdicts = sharecheck_verdicts(backend, w);
    assert_eq!(verdicts.len(), N);
    let mut accepted = 0;
    for (i, (s, v)) in fx.shares.iter().zip(&verdicts).enumerate() {
        assert_eq!(v.id, Some(i as u64 + 1));
        match c.validate_share(s.clone()) {
            Ok(ShareValidationResult::Valid(h)) => {
                let mut explorer = h.to_byte_array();
                explorer.reverse();
                assert_eq!(v.status, Status::Accepted, "share {}", i + 1);
                assert_eq!(v.hash, Some(explorer), "share {}", i + 1);
                accepted += 1;
            }
            Err(ShareValidationError::DoesNotMeetTarget(_)) => {
                assert_eq!(v.status, Status::LowDifficulty, "share {}", i + 1)
            }
            r => panic!("SRI: share {} got {r:?}: the bench set it up wrong", i + 1),
        }
    }
    accepted
}

fn validation(c: &mut Criterion) {
    let fx = fixture();
    let coinbase = fx.job.coinbase_tx_prefix.as_bytes().len()
        + EXTRANONCE as usize
        + fx.job.coinbase_tx_suffix.as_bytes().len();
    let w = workload(&fx);
    // The best engine of this CPU, and the scalar reference beside it.
    let mut backends = vec![CpuBackend::new(None, 1).expect("cpu engine")];
    if backends[0].name() != "cpu:scalar" {
        backends.push(CpuBackend::new(Some("scalar"), 1).expect("scalar engine"));
    }
    let mut accepted = 0;
    for b in &backends {
        accepted = agree(&fx, b, &w);
    }
    eprintln!(
        "validation: coinbase {coinbase} bytes (extranonce {EXTRANONCE}, prefix {}), merkle \
         depth {}, {N} shares, {accepted} accepted, nbits {NBITS:08x} (no blocks)",
        fx.prefix.len(),
        fx.job.merkle_path.len()
    );
    assert!(accepted > N / 4 && accepted < 3 * N / 4);

    let mut g = c.benchmark_group("validation");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("sri/extended", |b| {
        b.iter_batched(
            || (fresh_channel(&fx), fx.shares.clone()),
            |(mut ch, mut shares)| {
                let mut ok = 0usize;
                for s in shares.drain(..) {
                    if matches!(ch.validate_share(s), Ok(ShareValidationResult::Valid(_))) {
                        ok += 1;
                    }
                }
                // The channel and the emptied vector are returned so that their drops are
                // not timed.
                (black_box(ok), ch, shares)
            },
            BatchSize::LargeInput,
        )
    });
    for b in &backends {
        let name = b.name();
        let engine = name.strip_prefix("cpu:").unwrap_or(&name);
        g.bench_function(format!("sharecheck-whole/extended/{engine}"), |bench| {
            bench.iter(|| black_box(validate_workload(b, &w)))
        });
    }
    g.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
