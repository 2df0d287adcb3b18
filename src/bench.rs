//! Throughput measurement shared by `sharecheck bench` and the criterion benches: the hashing
//! step of each CPU path over the fixtures of realistic shares (from the backends' known
//! shares, re-exported here), and the baselines a Rust pool developer would otherwise write
//! (the `sha2` crate, and rust-bitcoin's header hash and PoW check).

use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::model::job::header_bytes;
use crate::model::validate::reference_header_words;
use crate::model::U256;
use crate::sha256::State;
use serde::Serialize;
use std::time::Duration;

pub use crate::backend::fixture::{
    check_against_reference, header_fixture, measure, standard_fixture, stratum_fixture, Fixture,
};

/// The fixture of a bench mode: `header` (free-standing headers, every first block its own),
/// `standard` (SV2 standard shares: headers of a few jobs and versions), `stratum`.
pub fn fixture(mode: &str, n: usize) -> Fixture {
    match mode {
        "header" => header_fixture(n, 7),
        "standard" => standard_fixture(n, 7),
        _ => stratum_fixture(n, 7),
    }
}

/// What a baseline needs per stratum share: its bytes, laid out once outside the timing.
pub struct BaselineShare {
    pub coinbase: Vec<u8>,
    pub branch: Vec<[u8; 32]>,
    pub header_prefix: [u8; 36],
    pub ntime: u32,
    pub nbits: u32,
    pub nonce: u32,
}

/// The stratum fixture as plain bytes for the baselines.
pub fn baseline_shares(f: &Fixture) -> Vec<BaselineShare> {
    f.tasks
        .iter()
        .map(|t| {
            let ctx = &f.jobs[t.job as usize];
            let mut coinbase = ctx.job.coinb1.clone();
            coinbase.extend_from_slice(t.extranonce());
            coinbase.extend_from_slice(&ctx.job.coinb2);
            let mut header_prefix = [0u8; 36];
            header_prefix[..4].copy_from_slice(&t.version.to_le_bytes());
            header_prefix[4..].copy_from_slice(&ctx.job.prevhash);
            BaselineShare {
                coinbase,
                branch: ctx.job.merkle_branch.clone(),
                header_prefix,
                ntime: t.ntime,
                nbits: ctx.job.nbits,
                nonce: t.nonce,
            }
        })
        .collect()
}

/// Headers of the header fixture as bytes.
pub fn baseline_headers(f: &Fixture) -> Vec<[u8; 80]> {
    f.tasks.iter().map(|t| t.data).collect()
}

/// Counts shares meeting the share target, so the optimiser cannot drop the work.
fn meets(hash_le: &[u8; 32], target: &U256) -> bool {
    let mut be = *hash_le;
    be.reverse();
    U256::from_be_bytes(&be) <= *target
}

/// sha2 crate: a header share is `Sha256::digest(Sha256::digest(header))` and a target check.
pub fn sha2_headers(headers: &[[u8; 80]], target: &U256) -> usize {
    use sha2::{Digest, Sha256};
    headers
        .iter()
        .filter(|h| meets(&Sha256::digest(Sha256::digest(&h[..])).into(), target))
        .count()
}

/// sha2 crate: a stratum share built the straightforward way.
pub fn sha2_stratum(shares: &[BaselineShare], target: &U256) -> usize {
    use sha2::{Digest, Sha256};
    let mut n = 0;
    for s in shares {
        let mut root: [u8; 32] = Sha256::digest(Sha256::digest(&s.coinbase)).into();
        for b in &s.branch {
            let inner = Sha256::new().chain_update(root).chain_update(b).finalize();
            root = Sha256::digest(inner).into();
        }
        let mut h = [0u8; 80];
        h[..36].copy_from_slice(&s.header_prefix);
        h[36..68].copy_from_slice(&root);
        h[68..72].copy_from_slice(&s.ntime.to_le_bytes());
        h[72..76].copy_from_slice(&s.nbits.to_le_bytes());
        h[76..].copy_from_slice(&s.nonce.to_le_bytes());
        n += meets(&Sha256::digest(Sha256::digest(h)).into(), target) as usize;
    }
    n
}

/// rust-bitcoin: decode the header, `block_hash()`, and check the share and network targets.
pub fn bitcoin_headers(headers: &[[u8; 80]], target: &U256) -> usize {
    use bitcoin::block::Header;
    let share = bitcoin::pow::Target::from_be_bytes(target.to_be_bytes());
    headers
        .iter()
        .filter(|h| {
            let hdr: Header = bitcoin::consensus::deserialize(&h[..]).expect("80 bytes");
            let hash = hdr.block_hash();
            hdr.target().is_met_by(hash) || share.is_met_by(hash)
        })
        .count()
}

/// rust-bitcoin: a stratum share with bitcoin_hashes' sha256d and the `Header` type.
pub fn bitcoin_stratum(shares: &[BaselineShare], target: &U256) -> usize {
    use bitcoin::hashes::{sha256d, Hash, HashEngine};
    let share = bitcoin::pow::Target::from_be_bytes(target.to_be_bytes());
    let mut n = 0;
    for s in shares {
        let mut root = sha256d::Hash::hash(&s.coinbase);
        for b in &s.branch {
            let mut e = sha256d::Hash::engine();
            e.input(root.as_byte_array());
            e.input(b);
            root = sha256d::Hash::from_engine(e);
        }
        let hdr = bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(i32::from_le_bytes(
                s.header_prefix[..4].try_into().expect("4"),
            )),
            prev_blockhash: bitcoin::BlockHash::from_byte_array(
                s.header_prefix[4..].try_into().expect("32"),
            ),
            merkle_root: bitcoin::TxMerkleNode::from_byte_array(root.to_byte_array()),
            time: s.ntime,
            bits: bitcoin::CompactTarget::from_consensus(s.nbits),
            nonce: s.nonce,
        };
        let hash = hdr.block_hash();
        n += (hdr.target().is_met_by(hash) || share.is_met_by(hash)) as usize;
    }
    n
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub backend: String,
    pub mode: &'static str,
    pub batch: usize,
    pub threads: usize,
    pub shares_per_sec: f64,
    /// GPU rows: the device's ceiling in SHA-256 compressions/s
    /// ([`crate::backend::gpu::ceiling`]) and the fraction of it this rate reaches
    /// (shares/s × [`device_compressions`] of the mode / ceiling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_compressions_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction_of_ceiling: Option<f64>,
}

pub use crate::backend::gpu::ceiling::device_compressions;

/// Settings of `sharecheck bench`.
pub struct BenchPlan {
    pub engines: Vec<&'static str>,
    pub batches: Vec<usize>,
    pub threads: Vec<usize>,
    pub modes: Vec<&'static str>,
    pub time: Duration,
}

/// Runs the plan; calls `report` with each figure as soon as it is measured.
pub fn run(plan: &BenchPlan, mut report: impl FnMut(&Figure)) -> anyhow::Result<Vec<Figure>> {
    let mut all = Vec::new();
    let max_batch = plan.batches.iter().copied().max().unwrap_or(1);
    for &mode in &plan.modes {
        let fx = fixture(mode, max_batch);
        for &engine in &plan.engines {
            for &threads in &plan.threads {
                let backend = CpuBackend::new(Some(engine), threads)?;
                for &batch in &plan.batches {
                    let mut out: Vec<State> = vec![[0; 8]; batch];
                    let tasks = &fx.tasks[..batch];
                    let rate = measure(plan.time, batch, || {
                        backend
                            .hash(&fx.jobs, tasks, &mut out)
                            .expect("cpu backend cannot fail");
                        std::hint::black_box(&out);
                    });
                    let fig = Figure {
                        backend: backend.name(),
                        mode,
                        batch,
                        threads: backend.threads(),
                        shares_per_sec: rate,
                        ceiling_compressions_per_sec: None,
                        fraction_of_ceiling: None,
                    };
                    report(&fig);
                    all.push(fig);
                }
            }
        }
        // Baselines, one core, over the largest batch.
        let n = max_batch.min(4096);
        let t = fx.share_target;
        let (sha2_rate, btc_rate) = if mode != "stratum" {
            let hs = baseline_headers(&fx);
            let hs = &hs[..n];
            (
                measure(plan.time, n, || {
                    std::hint::black_box(sha2_headers(hs, &t));
                }),
                measure(plan.time, n, || {
                    std::hint::black_box(bitcoin_headers(hs, &t));
                }),
            )
        } else {
            let ss = baseline_shares(&fx);
            let ss = &ss[..n];
            (
                measure(plan.time, n, || {
                    std::hint::black_box(sha2_stratum(ss, &t));
                }),
                measure(plan.time, n, || {
                    std::hint::black_box(bitcoin_stratum(ss, &t));
                }),
            )
        };
        all.extend(whole_rows(plan, mode, &mut report)?);
        for (name, rate) in [
            ("baseline:sha2", sha2_rate),
            ("baseline:rust-bitcoin", btc_rate),
        ] {
            let fig = Figure {
                backend: name.into(),
                mode,
                batch: n,
                threads: 1,
                shares_per_sec: rate,
                ceiling_compressions_per_sec: None,
                fraction_of_ceiling: None,
            };
            report(&fig);
            all.push(fig);
        }
    }
    Ok(all)
}

/// A generated workload, read once: its jobs and share records in file order.
pub struct Workload {
    pub items: Vec<WorkItem>,
    pub shares: usize,
}

pub enum WorkItem {
    Job(crate::model::Job),
    Share(crate::wire::binary::ShareRecord),
}

/// `gen`'s workload of `mode` with `shares` shares, all mined to be hashed (accepted, with a
/// few blocks and low-difficulty ones, no rejects): the work a node does for each of them.
pub fn workload(mode: crate::gen::GenMode, shares: u64) -> Workload {
    let cfg = crate::gen::GenConfig {
        shares,
        seed: 7,
        mode,
        rejects: 0.0,
        ..Default::default()
    };
    let mut text = Vec::new();
    crate::gen::generate(&cfg, &mut text).expect("gen writes to memory");
    let mut items = Vec::new();
    for line in String::from_utf8(text).expect("gen writes UTF-8").lines() {
        match crate::wire::jsonl::parse_line(line) {
            crate::wire::jsonl::Line::Job(Ok(j)) => items.push(WorkItem::Job(j)),
            crate::wire::jsonl::Line::Share(Ok(r)) => items.push(WorkItem::Share(r)),
            _ => {}
        }
    }
    let shares = items
        .iter()
        .filter(|i| matches!(i, WorkItem::Share(_)))
        .count();
    Workload { items, shares }
}

/// The whole per-share work of a node on `w`, once: record checks, job lookup, checks 1–6
/// with the duplicate sets (a fresh validator, so no share repeats the last round's),
/// hashing on `backend`, check 7, and the verdict message. Returns the message's length.
pub fn validate_workload(backend: &dyn Backend, w: &Workload) -> usize {
    use crate::model::{Batch, ValidationConfig, Validator};
    let mut v = Validator::new(ValidationConfig::default());
    let mut batch = Batch::with_capacity(w.shares);
    for item in &w.items {
        match item {
            WorkItem::Job(j) => {
                let _ = v.add_job(j.clone());
            }
            WorkItem::Share(r) => {
                v.check(r, &mut batch);
            }
        }
    }
    let mut out: Vec<State> = vec![[0; 8]; batch.tasks.len()];
    backend
        .hash(&batch.jobs, &batch.tasks, &mut out)
        .expect("cpu backend cannot fail");
    let verdicts = batch.finish(&out);
    crate::wire::binary::encode_verdicts(&verdicts).len()
}

/// Rows of the whole validation for the bench mode `mode`, one thread per engine: stratum
/// shares and SV2 extended shares beside the stratum hashing rows, SV2 standard shares
/// beside the standard rows, header shares (on their standard jobs) beside the header rows.
fn whole_rows(
    plan: &BenchPlan,
    mode: &'static str,
    report: &mut impl FnMut(&Figure),
) -> anyhow::Result<Vec<Figure>> {
    use crate::gen::GenMode;
    let kinds: &[(&str, GenMode)] = match mode {
        "stratum" => &[
            ("whole", GenMode::Stratum),
            ("whole-sv2x", GenMode::Sv2Extended),
        ],
        "standard" => &[("whole", GenMode::Sv2Standard)],
        _ => &[("whole", GenMode::Header)],
    };
    let mut all = Vec::new();
    for &(name, gen_mode) in kinds {
        let max_batch = plan.batches.iter().copied().max().unwrap_or(1);
        let w = workload(gen_mode, max_batch.min(8192) as u64);
        for &engine in &plan.engines {
            let backend = CpuBackend::new(Some(engine), 1)?;
            let rate = measure(plan.time, w.shares, || {
                std::hint::black_box(validate_workload(&backend, &w));
            });
            let fig = Figure {
                backend: format!("{name}:{}", backend.name()),
                mode,
                batch: w.shares,
                threads: 1,
                shares_per_sec: rate,
                ceiling_compressions_per_sec: None,
                fraction_of_ceiling: None,
            };
            report(&fig);
            all.push(fig);
        }
    }
    Ok(all)
}

/// Measures an open backend (a GPU backend) at each batch size and mode of the plan; its
/// figures carry `threads: 0` (one device, not a number of cores).
pub fn run_backend(
    backend: &dyn Backend,
    plan: &BenchPlan,
    ceiling: Option<f64>,
    mut report: impl FnMut(&Figure),
) -> anyhow::Result<Vec<Figure>> {
    let mut all = Vec::new();
    let max_batch = plan.batches.iter().copied().max().unwrap_or(1);
    for &mode in &plan.modes {
        let fx = fixture(mode, max_batch);
        for &batch in &plan.batches {
            let mut out: Vec<State> = vec![[0; 8]; batch];
            let tasks = &fx.tasks[..batch];
            let mut err = None;
            let rate = measure(plan.time, batch, || {
                if err.is_none() {
                    err = backend.hash(&fx.jobs, tasks, &mut out).err();
                }
                std::hint::black_box(&out);
            });
            if let Some(e) = err {
                return Err(e.context(format!("{} failed while measured", backend.name())));
            }
            let fig = Figure {
                backend: backend.name(),
                mode,
                batch,
                threads: 0,
                shares_per_sec: rate,
                ceiling_compressions_per_sec: ceiling,
                fraction_of_ceiling: ceiling.map(|c| rate * device_compressions(mode) / c),
            };
            report(&fig);
            all.push(fig);
        }
    }
    Ok(all)
}

/// Header bytes of a stratum fixture task (for tests).
pub fn stratum_header(f: &Fixture, i: usize) -> [u8; 80] {
    let t = &f.tasks[i];
    header_bytes(&reference_header_words(&f.jobs[t.job as usize], t))
}
