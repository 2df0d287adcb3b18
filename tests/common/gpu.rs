//! The GPU backend tests, written once and run for each API by tests/gpu_wgpu.rs and
//! tests/gpu_opencl.rs. They run the real wgpu and OpenCL code paths and the real kernels: on a
//! machine without a GPU, on Mesa's lavapipe (Vulkan) and PoCL (OpenCL), which .ci/run
//! installs. A machine without them FAILS these tests with what to install, because a silently
//! skipped test would hide a broken CI; SHARECHECK_SKIP_GPU=1 skips them on purpose.

#![allow(dead_code)] // each test file uses one API

use bytemuck::Zeroable;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sharecheck::backend::cpu::CpuBackend;
use sharecheck::backend::fallback::Fallback;
use sharecheck::backend::gpu::GpuOptions;
use sharecheck::backend::opencl::OpenClBackend;
use sharecheck::backend::wgpu::WgpuBackend;
use sharecheck::backend::{select, Backend};
use sharecheck::model::job::{Job, JobCtx, DEFAULT_VERSION_MASK};
use sharecheck::model::validate::{reference_hash, TaskMeta};
use sharecheck::model::{HashTask, U256};
use std::sync::Arc;
use std::time::Instant;

/// `wgpu` or `opencl`.
#[derive(Clone, Copy, Debug)]
pub enum Api {
    Wgpu,
    OpenCl,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Wgpu => "wgpu",
            Api::OpenCl => "opencl",
        }
    }

    fn install(self) -> &'static str {
        match self {
            Api::Wgpu => "Mesa's lavapipe Vulkan driver (Debian: apt-get install mesa-vulkan-drivers; also export XDG_RUNTIME_DIR=/tmp)",
            Api::OpenCl => "PoCL and the OpenCL ICD loader (Debian: apt-get install pocl-opencl-icd ocl-icd-libopencl1)",
        }
    }

    /// The shipped kernel source.
    pub fn kernel(self) -> &'static str {
        match self {
            Api::Wgpu => sharecheck::backend::wgpu::KERNEL,
            Api::OpenCl => sharecheck::backend::opencl::KERNEL,
        }
    }
}

/// Whether the GPU tests are skipped on purpose.
pub fn skipped(api: Api) -> bool {
    if std::env::var("SHARECHECK_SKIP_GPU").is_ok_and(|v| v == "1") {
        eprintln!("SHARECHECK_SKIP_GPU=1: {} test skipped", api.name());
        return true;
    }
    false
}

/// Opens the backend with a kernel source, or fails the test with what to install.
pub fn open_with_kernel(api: Api, opts: GpuOptions, source: &str) -> Box<dyn Backend> {
    let r: anyhow::Result<Box<dyn Backend>> = match api {
        Api::Wgpu => WgpuBackend::with_kernel(opts, source).map(|b| Box::new(b) as _),
        Api::OpenCl => OpenClBackend::with_kernel(opts, source).map(|b| Box::new(b) as _),
    };
    r.unwrap_or_else(|e| {
        panic!(
            "the {api} backend cannot start: {e:#}\n\
             These tests run the real {api} code path; install {}, \
             or set SHARECHECK_SKIP_GPU=1 to skip them on purpose.",
            api.install(),
            api = api.name()
        )
    })
}

pub fn open(api: Api, opts: GpuOptions) -> Box<dyn Backend> {
    open_with_kernel(api, opts, api.kernel())
}

/// A random job: coinbase parts of random lengths (coinb1 0..300, coinb2 0..400 bytes, so the
/// tail spans 1 to 8 blocks and crosses every block boundary) and a branch 0..=16 deep.
pub fn random_job(rng: &mut ChaCha8Rng, i: usize) -> Arc<JobCtx> {
    let c1 = rng.random_range(0..300);
    let c2 = rng.random_range(0..400);
    let depth = rng.random_range(0..=16);
    Arc::new(
        JobCtx::new(Job {
            job_id: format!("r{i}"),
            prevhash: rng.random(),
            coinb1: (0..c1).map(|_| rng.random()).collect(),
            coinb2: (0..c2).map(|_| rng.random()).collect(),
            merkle_branch: (0..depth).map(|_| rng.random()).collect(),
            version: rng.random(),
            nbits: 0x1d00ffff,
            ntime: rng.random(),
            clean_jobs: false,
            version_mask: DEFAULT_VERSION_MASK,
            extranonce_size: None,
            merkle_root: None,
            step: Default::default(),
        })
        .expect("valid job"),
    )
}

/// Random tasks over `jobs`: about one in eight a header share, the rest stratum shares with
/// 0..=32 extranonce bytes.
pub fn random_tasks(rng: &mut ChaCha8Rng, njobs: usize, n: usize) -> Vec<HashTask> {
    (0..n)
        .map(|_| {
            let mut t = HashTask::zeroed();
            if rng.random_range(0..8) == 0 {
                t.job = HashTask::HEADER;
                rng.fill(&mut t.data[..]);
            } else {
                t.job = rng.random_range(0..njobs) as u32;
                t.version = rng.random();
                t.ntime = rng.random();
                t.nonce = rng.random();
                let en = rng.random_range(0..=32usize);
                t.en_len = en as u32;
                rng.fill(&mut t.data[..en]);
            }
            t
        })
        .collect()
}

fn minus_one(v: &U256) -> U256 {
    let mut l = v.0;
    for limb in l.iter_mut() {
        if *limb != 0 {
            *limb -= 1;
            return U256(l);
        }
        *limb = u64::MAX;
    }
    U256::ZERO
}

/// Targets around each hash: exactly the hash (meets: the boundary), one below (misses),
/// the extremes, and DIFF1.
pub fn targets_around(rng: &mut ChaCha8Rng, hashes: &[[u32; 8]]) -> Vec<TaskMeta> {
    hashes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let v = U256::from_hash_state(h);
            let mut pick = || match rng.random_range(0..5) {
                0 => v,
                1 => minus_one(&v),
                2 => U256::MAX,
                3 => U256::ZERO,
                _ => sharecheck::model::target::DIFF1,
            };
            TaskMeta {
                id: i as u64,
                share_target: pick(),
                network_target: pick(),
            }
        })
        .collect()
}

/// Differential test: `n` random shares over `njobs` random jobs, in batches of `batch`,
/// hashed by the backend with device-side target checks, compared with the scalar reference.
pub fn differential(api: Api, n: usize, njobs: usize, batch: usize, seed: u64) {
    if skipped(api) {
        return;
    }
    let b = open(api, GpuOptions::default());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let jobs: Vec<Arc<JobCtx>> = (0..njobs).map(|i| random_job(&mut rng, i)).collect();
    let tasks = random_tasks(&mut rng, jobs.len(), n);
    let t0 = Instant::now();
    let want: Vec<[u32; 8]> = tasks.iter().map(|t| reference_hash(&jobs, t)).collect();
    let t_ref = t0.elapsed();
    let meta = targets_around(&mut rng, &want);
    let t1 = Instant::now();
    let mut got = vec![[0u32; 8]; n];
    for ((t, m), o) in tasks
        .chunks(batch)
        .zip(meta.chunks(batch))
        .zip(got.chunks_mut(batch))
    {
        b.hash_checked(&jobs, t, m, o)
            .unwrap_or_else(|e| panic!("{}: {e:#}", b.name()));
    }
    let t_dev = t1.elapsed();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g,
            w,
            "{} differs from the reference on share {i} (job {:?})",
            b.name(),
            tasks[i].job
        );
    }
    eprintln!(
        "{}: {n} random shares match the reference (device {:.2} s, reference {:.2} s)",
        b.name(),
        t_dev.as_secs_f64(),
        t_ref.as_secs_f64()
    );
}

/// Batch sizes 1, work-group size ± 1, and batches split into several dispatches (a chunk
/// that is not a multiple of the work-group size), for two work-group sizes.
pub fn odd_batch_sizes(api: Api) {
    if skipped(api) {
        return;
    }
    let s = sharecheck::bench::stratum_fixture(1100, 3);
    let h = sharecheck::bench::header_fixture(1100, 4);
    let mixed: Vec<HashTask> = s
        .tasks
        .iter()
        .zip(&h.tasks)
        .flat_map(|(a, b)| [*a, *b])
        .collect();
    let want: Vec<[u32; 8]> = mixed.iter().map(|t| reference_hash(&s.jobs, t)).collect();
    for wg in [32u32, 64] {
        for chunk in [100usize, wg as usize + 1, 1 << 18] {
            let b = open(
                api,
                GpuOptions {
                    work_group_size: wg,
                    chunk,
                    ..GpuOptions::default()
                },
            );
            let w = wg as usize;
            for n in [1, 2, w - 1, w, w + 1, 2 * w + 1, 1000, 2200] {
                let mut out = vec![[0u32; 8]; n];
                b.hash(&s.jobs, &mixed[..n], &mut out)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", b.name()));
                assert_eq!(
                    out,
                    want[..n],
                    "{} wg {wg} chunk {chunk} batch {n}",
                    b.name()
                );
            }
            // Empty batches are fine too.
            b.hash(&s.jobs, &[], &mut []).unwrap();
        }
    }
}

/// SV2 standard shares in runs that share their first 64 bytes, which the backends pack from
/// midstates (two compressions a share on the device): alone, broken up by stratum shares,
/// across dispatches and host packing blocks, with device-side target checks.
pub fn standard_shares_from_midstates(api: Api) {
    if skipped(api) {
        return;
    }
    let f = sharecheck::bench::standard_fixture(20_000, 11);
    let s = sharecheck::bench::stratum_fixture(20_000, 12);
    let mut mixed = f.tasks.clone();
    for i in (0..mixed.len()).step_by(97) {
        mixed[i] = s.tasks[i];
    }
    assert_eq!(
        sharecheck::backend::gpu::record_stride(&mixed),
        sharecheck::backend::gpu::MID_REC_WORDS,
        "the batch is packed from midstates"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for tasks in [&f.tasks, &mixed] {
        let want: Vec<[u32; 8]> = tasks.iter().map(|t| reference_hash(&s.jobs, t)).collect();
        let meta = targets_around(&mut rng, &want);
        for chunk in [1usize << 18, 1000] {
            let b = open(
                api,
                GpuOptions {
                    chunk,
                    ..GpuOptions::default()
                },
            );
            let mut got = vec![[0u32; 8]; tasks.len()];
            b.hash_checked(&s.jobs, tasks, &meta, &mut got)
                .unwrap_or_else(|e| panic!("{}: {e:#}", b.name()));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g, w, "{} chunk {chunk}: share {i}", b.name());
            }
            for n in [1, 2, 63, 65, 300] {
                let mut out = vec![[0u32; 8]; n];
                b.hash(&s.jobs, &tasks[..n], &mut out)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", b.name()));
                assert_eq!(out, want[..n], "{} chunk {chunk} batch {n}", b.name());
            }
        }
    }
}

/// The device's ceiling (compressions/s of the single-block kernel) is measured, and a
/// ceiling kernel that skips rounds is an error, not a fast figure.
pub fn ceiling_is_measured_and_checked(api: Api, skip_a_round: (&str, &str)) {
    if skipped(api) {
        return;
    }
    let b = open(api, GpuOptions::default());
    let rate = b
        .ceiling()
        .expect("a GPU backend has a ceiling")
        .unwrap_or_else(|e| panic!("{}: {e:#}", b.name()));
    eprintln!("{}: ceiling {:.1} M compressions/s", b.name(), rate / 1e6);
    assert!(rate > 1e5, "{}: {rate} compressions/s", b.name());
    let (from, to) = skip_a_round;
    assert_eq!(
        api.kernel().matches(from).count(),
        1,
        "{from:?} is in the kernel once"
    );
    let broken = open_with_kernel(api, GpuOptions::default(), &api.kernel().replace(from, to));
    let e = broken
        .ceiling()
        .expect("the broken kernel still has a ceiling")
        .expect_err("a ceiling kernel that skips work must not give a figure");
    assert!(
        format!("{e:#}").contains("differs from the reference"),
        "{e:#}"
    );
}

/// Every kind of share: stratum, header, SV2 standard and SV2 extended, in turn.
fn mixed_workload(shares: u64, seed: u64) -> String {
    let cfg = sharecheck::gen::GenConfig {
        shares,
        seed,
        mode: sharecheck::gen::GenMode::All,
        ..Default::default()
    };
    let mut out = Vec::new();
    sharecheck::gen::generate(&cfg, &mut out).expect("gen");
    String::from_utf8(out).expect("utf-8")
}

fn verify_text(input: &str, b: &dyn Backend, batch: usize) -> String {
    let mut out = Vec::new();
    sharecheck::verify::run(
        input.as_bytes(),
        &mut out,
        b,
        sharecheck::model::ValidationConfig::default(),
        batch,
        |_, _| {},
    )
    .expect("verify runs");
    String::from_utf8(out).expect("utf-8")
}

fn cpu() -> Box<dyn Backend> {
    Box::new(CpuBackend::new(Some("scalar"), 1).unwrap())
}

/// `verify` through the GPU backend (wrapped as the service wraps it) gives byte-identical
/// verdict lines to the CPU on a `gen --mode all` workload, which has every status and every
/// kind of share.
pub fn verify_matches_cpu(api: Api) {
    if skipped(api) {
        return;
    }
    let input = mixed_workload(6000, 11);
    let want = verify_text(&input, cpu().as_ref(), 1000);
    let fb = Fallback::new(open(api, GpuOptions::default()), cpu());
    for batch in [1000, 777] {
        let got = verify_text(&input, &fb, batch);
        assert!(
            got == want,
            "{} verdicts differ at batch {batch}",
            fb.name()
        );
    }
    assert!(!fb.primary_failed(), "{} fell back", fb.name());
    for status in [
        "\"accepted\"",
        "\"block\"",
        "\"low_difficulty\"",
        "\"duplicate\"",
        "\"stale\"",
        "\"unknown_job\"",
        "\"bad_ntime\"",
        "\"bad_version\"",
        "\"malformed\"",
    ] {
        assert!(want.contains(status), "the workload lacks {status}");
    }
}

/// The command line: `sharecheck verify --backend <api>` prints the same verdicts as
/// `--backend cpu`.
pub fn cli_verify_matches_cpu(api: Api) {
    if skipped(api) {
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "sharecheck-gpu-cli-{}-{}",
        api.name(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mixed.jsonl");
    std::fs::write(&file, mixed_workload(3000, 5)).unwrap();
    let run = |backend: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_sharecheck"))
            .args(["verify", "--backend", backend, "--batch", "512"])
            .arg(&file)
            .env("XDG_RUNTIME_DIR", "/tmp")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "verify --backend {backend} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        (o.stdout, String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (cpu_out, _) = run("cpu");
    let (gpu_out, stderr) = run(api.name());
    assert!(cpu_out == gpu_out, "verdicts differ; stderr: {stderr}");
    assert!(
        stderr.contains(&format!("[{}:", api.name())),
        "verify did not run on {}: {stderr}",
        api.name()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Deliberately broken kernels: each must be caught (by the self-test, the tag check, the
/// flag cross-check, or the spot check) and every verdict must still be the CPU's.
pub fn broken_kernels_fall_back(api: Api, breakages: &[(&str, &str, &str)]) {
    if skipped(api) {
        return;
    }
    let input = mixed_workload(2000, 17);
    let want = verify_text(&input, cpu().as_ref(), 500);
    for (what, from, to) in breakages {
        let src = api.kernel();
        assert!(src.contains(from), "kernel no longer contains {from:?}");
        let broken = src.replacen(from, to, 1);
        let gpu = open_with_kernel(api, GpuOptions::default(), &broken);
        if *what == "wrong hash" {
            assert!(
                select::self_test(gpu.as_ref()).is_err(),
                "the self-test passed a kernel that computes wrong hashes"
            );
        }
        let fb = Fallback::new(gpu, cpu());
        let got = verify_text(&input, &fb, 500);
        assert!(got == want, "{what}: verdicts differ from the CPU's");
        assert!(
            fb.primary_failed(),
            "{what}: the broken kernel was not caught"
        );
        assert_eq!(
            fb.failures(),
            1,
            "{what}: taken out of service after one failure"
        );
        assert!(fb.name().starts_with("cpu:"), "{}", fb.name());
    }
}

/// A device index that does not exist is an error naming `sharecheck backends`.
pub fn bad_device_index_is_an_error(api: Api) {
    if skipped(api) {
        return;
    }
    let opts = GpuOptions {
        device: 999,
        ..GpuOptions::default()
    };
    let e = match api {
        Api::Wgpu => WgpuBackend::new(opts).map(|_| ()),
        Api::OpenCl => OpenClBackend::new(opts).map(|_| ()),
    }
    .expect_err("device 999 does not exist");
    assert!(e.to_string().contains("sharecheck backends"), "{e}");
}
