//! Differential tests: every CPU path this machine supports gives exactly the scalar
//! reference's hashes, and so the same verdicts, on random jobs and shares, for batch sizes
//! that exercise every lane remainder.

mod common;
use bytemuck::Zeroable;
use common::*;
use proptest::prelude::*;
use sharecheck::model::job::{Job, JobCtx};
use sharecheck::model::validate::reference_hash;
use sharecheck::model::HashTask;
use std::sync::Arc;

fn arb_job() -> impl Strategy<Value = Job> {
    (
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(any::<[u8; 32]>(), 0..14),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(coinb1, coinb2, merkle_branch, prevhash, version, ntime)| Job {
                job_id: "p".into(),
                prevhash,
                coinb1,
                coinb2,
                merkle_branch,
                version,
                nbits: 0x1d00ffff,
                ntime,
                clean_jobs: false,
                version_mask: 0x1fffe000,
                extranonce_size: None,
                merkle_root: None,
                step: Default::default(),
            },
        )
}

fn arb_task(njobs: usize) -> impl Strategy<Value = HashTask> {
    (
        0..njobs + 1,
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        0usize..=32,
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 80),
    )
        .prop_map(move |(job, version, ntime, nonce, en_len, en, header)| {
            let mut t = HashTask::zeroed();
            if job == njobs {
                t.job = HashTask::HEADER;
                t.data.copy_from_slice(&header);
            } else {
                t.job = job as u32;
                t.version = version;
                t.ntime = ntime;
                t.nonce = nonce;
                t.en_len = en_len as u32;
                t.data[..en_len].copy_from_slice(&en[..en_len]);
            }
            t
        })
}

fn check_all_paths(jobs: &[Arc<JobCtx>], tasks: &[HashTask]) -> Result<(), TestCaseError> {
    let want: Vec<_> = tasks.iter().map(|t| reference_hash(jobs, t)).collect();
    for b in cpu_backends() {
        let mut out = vec![[0u32; 8]; tasks.len()];
        b.hash(jobs, tasks, &mut out).unwrap();
        for (i, (o, w)) in out.iter().zip(&want).enumerate() {
            prop_assert_eq!(
                o,
                w,
                "{} differs on task {} of {}",
                b.name(),
                i,
                tasks.len()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_jobs_and_shares(
        jobs in proptest::collection::vec(arb_job(), 1..5),
        tasks in proptest::collection::vec(arb_task(4), 1..80),
    ) {
        let jobs: Vec<Arc<JobCtx>> = jobs.into_iter().map(|j| Arc::new(JobCtx::new(j).unwrap())).collect();
        let tasks: Vec<HashTask> = tasks
            .into_iter()
            .map(|mut t| {
                if !t.is_header() {
                    t.job %= jobs.len() as u32;
                }
                t
            })
            .collect();
        check_all_paths(&jobs, &tasks)?;
    }
}

#[test]
fn batch_sizes_cover_every_lane_remainder() {
    let fx = sharecheck::bench::stratum_fixture(1000, 5);
    let hx = sharecheck::bench::header_fixture(1000, 6);
    for n in [1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 255, 256, 257, 1000] {
        check_all_paths(&fx.jobs, &fx.tasks[..n]).unwrap();
        check_all_paths(&hx.jobs, &hx.tasks[..n]).unwrap();
        // Mixed header and stratum tasks in one batch.
        let mixed: Vec<HashTask> = fx.tasks[..n]
            .iter()
            .zip(&hx.tasks[..n])
            .flat_map(|(a, b)| [*a, *b])
            .collect();
        check_all_paths(&fx.jobs, &mixed).unwrap();
    }
}

/// Headers that share their first 64 bytes (SV2 standard shares of a few jobs and versions)
/// take the two-compression path; interleaved with unique headers, and with fewer repeats
/// than pay, the ordinary one. Every lane remainder, every path, the reference's hashes.
#[test]
fn shared_first_blocks_hash_like_the_reference() {
    let sx = sharecheck::bench::standard_fixture(1000, 8);
    let hx = sharecheck::bench::header_fixture(1000, 9);
    for n in [2, 3, 15, 16, 17, 64, 65, 255, 256, 257, 1000] {
        check_all_paths(&sx.jobs, &sx.tasks[..n]).unwrap();
        // One unique header in every k: the path is chosen by the repeats.
        for k in [2, 3, 8] {
            let mixed: Vec<HashTask> = (0..n)
                .map(|i| if i % k == 0 { hx.tasks[i] } else { sx.tasks[i] })
                .collect();
            check_all_paths(&sx.jobs, &mixed).unwrap();
        }
    }
    // A first block that differs in its last byte only is another midstate.
    let mut tasks = sx.tasks[..64].to_vec();
    for (i, t) in tasks.iter_mut().enumerate() {
        t.data[63] ^= (i % 2) as u8;
    }
    check_all_paths(&sx.jobs, &tasks).unwrap();
}

/// The whole `verify` path: each CPU path gives verdicts identical to the scalar path on a
/// generated workload with every status.
#[test]
fn verdicts_identical_across_paths() {
    let cfg = sharecheck::gen::GenConfig {
        shares: 4000,
        seed: 99,
        mode: sharecheck::gen::GenMode::All,
        accepted: 0.6,
        blocks: 0.01,
        rejects: 0.2,
        ..Default::default()
    };
    let mut out = Vec::new();
    sharecheck::gen::generate(&cfg, &mut out).unwrap();
    let lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let scalar = sharecheck::backend::open("cpu:scalar", 1).unwrap();
    let want = verify_lines(&lines, scalar.as_ref(), 1000);
    // The generator's own expectation agrees with the reference.
    let expect: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["share"]["expect"].as_str().map(str::to_string)
        })
        .collect();
    let got: Vec<String> = want
        .iter()
        .map(|v| v["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, expect);
    for s in sharecheck::model::Status::ALL {
        assert!(got.iter().any(|g| g == s.as_str()), "workload lacks {s}");
    }
    for b in cpu_backends() {
        for batch in [1, 3, 17, 1000] {
            assert_eq!(
                verify_lines(&lines, b.as_ref(), batch),
                want,
                "{} batch {batch}",
                b.name()
            );
        }
    }
}
