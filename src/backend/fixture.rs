//! Known shares for the backends: the fixtures that the self-test, `auto`, the measurements
//! and the tests hash, the check of a backend against the scalar reference, and the timing
//! loop of every shares/s figure. `sharecheck bench` builds on them (and re-exports them).

use super::Backend;
use crate::model::job::{Job, JobCtx, DEFAULT_VERSION_MASK};
use crate::model::{HashTask, U256};
use bytemuck::Zeroable;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A set of shares to hash, with everything the baselines need to do the same work.
pub struct Fixture {
    pub jobs: Vec<Arc<JobCtx>>,
    pub tasks: Vec<HashTask>,
    /// Share target of every share (difficulty 1).
    pub share_target: U256,
}

/// Shares whose coinbase is 200 bytes (coinb1 50, extranonce 4 + 8, coinb2 138) under a
/// 12-deep merkle branch: 5 + 36 + 3 = 44 compressions each, as at a typical pool. Four jobs.
pub fn stratum_fixture(n: usize, seed: u64) -> Fixture {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let jobs: Vec<Arc<JobCtx>> = (0..4)
        .map(|i| {
            Arc::new(
                JobCtx::new(Job {
                    job_id: format!("j{i}"),
                    prevhash: rng.random(),
                    coinb1: (0..50).map(|_| rng.random()).collect(),
                    coinb2: (0..138).map(|_| rng.random()).collect(),
                    merkle_branch: (0..12).map(|_| rng.random()).collect(),
                    version: 0x2000_0000,
                    nbits: 0x1703_4219,
                    ntime: 1_750_000_000,
                    clean_jobs: false,
                    version_mask: DEFAULT_VERSION_MASK,
                    extranonce_size: None,
                    merkle_root: None,
                    step: Default::default(),
                })
                .expect("valid job"),
            )
        })
        .collect();
    let tasks = (0..n)
        .map(|i| {
            let mut t = HashTask::zeroed();
            t.job = (i % jobs.len()) as u32;
            t.version = 0x2000_0000 | (rng.random::<u32>() & DEFAULT_VERSION_MASK);
            t.ntime = 1_750_000_000 + (i as u32 % 100);
            t.nonce = rng.random();
            t.en_len = 12;
            rng.fill(&mut t.data[..12]);
            t
        })
        .collect();
    Fixture {
        jobs,
        tasks,
        share_target: crate::model::target::DIFF1,
    }
}

/// Header shares: n distinct random 80-byte headers.
pub fn header_fixture(n: usize, seed: u64) -> Fixture {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tasks = (0..n)
        .map(|_| {
            let mut t = HashTask::zeroed();
            t.job = HashTask::HEADER;
            rng.fill(&mut t.data[..]);
            t.data[72..76].copy_from_slice(&0x1703_4219u32.to_le_bytes());
            t
        })
        .collect();
    Fixture {
        jobs: vec![],
        tasks,
        share_target: crate::model::target::DIFF1,
    }
}

/// SV2 standard shares as the validator queues them (header tasks built from their job):
/// eight channels, each with its own standard job (prevhash shared, merkle root its own),
/// their shares arriving in runs of 64 per channel (a share message of one channel), each
/// share with one of the four versions its miner rolls, its own ntime and nonce. The
/// headers of one job and version share their first 64 bytes.
pub fn standard_fixture(n: usize, seed: u64) -> Fixture {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let prevhash: [u8; 32] = rng.random();
    let roots: Vec<[u8; 32]> = (0..8).map(|_| rng.random()).collect();
    let versions: Vec<[u32; 4]> = (0..8)
        .map(|_| std::array::from_fn(|_| 0x2000_0000 | (rng.random::<u32>() & 0x1fff_ffe0)))
        .collect();
    let tasks = (0..n)
        .map(|i| {
            let ch = (i / 64) % 8;
            let mut t = HashTask::zeroed();
            t.job = HashTask::HEADER;
            let version = versions[ch][rng.random_range(0..4)];
            t.data[..4].copy_from_slice(&version.to_le_bytes());
            t.data[4..36].copy_from_slice(&prevhash);
            t.data[36..68].copy_from_slice(&roots[ch]);
            t.data[68..72]
                .copy_from_slice(&(1_750_000_000 + rng.random_range(0..120u32)).to_le_bytes());
            t.data[72..76].copy_from_slice(&0x1703_4219u32.to_le_bytes());
            t.data[76..].copy_from_slice(&rng.random::<u32>().to_le_bytes());
            t
        })
        .collect();
    Fixture {
        jobs: vec![],
        tasks,
        share_target: crate::model::target::DIFF1,
    }
}

/// Runs `f` (which processes `per_call` shares) repeatedly for about `time`; shares/s.
pub fn measure(time: Duration, per_call: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up: page in buffers, settle caches and clocks
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < time || calls < 3 {
        f();
        calls += 1;
    }
    (calls * per_call as u64) as f64 / start.elapsed().as_secs_f64()
}

/// Checks a fixture's hashes against the scalar reference (used by tests and before
/// benchmarking, so a fast wrong path is never reported).
pub fn check_against_reference(backend: &dyn Backend, f: &Fixture) -> anyhow::Result<()> {
    let mut out = vec![[0u32; 8]; f.tasks.len()];
    backend.hash(&f.jobs, &f.tasks, &mut out)?;
    for (i, (t, h)) in f.tasks.iter().zip(&out).enumerate() {
        let want = crate::model::validate::reference_hash(&f.jobs, t);
        anyhow::ensure!(
            *h == want,
            "{} disagrees with the scalar reference on share {i}",
            backend.name()
        );
    }
    Ok(())
}
