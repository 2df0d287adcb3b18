//! Where a GPU backend's time goes: the host's own work per share (checking, packing the
//! records, checking the results) beside the backend's whole rate, with and without the
//! device-side target comparison. When the host's time per share is close to the backend's,
//! the host (or the bus) is the limit, not the kernel.
//!
//! ```sh
//! cargo run --release --example gpu_profile -- [--api opencl|wgpu] [--device N] [--wg N]
//!     [--kernel FILE] [--batch 65536,1048576] [--seconds 1]
//! ```
//! `--kernel` runs another kernel source (e.g. a variant under study) instead of the shipped
//! one. Modes: header (free-standing headers), standard (SV2 standard shares, packed from
//! midstates), stratum.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sharecheck::backend::gpu::{self, GpuOptions, OUT_WORDS};
use sharecheck::backend::opencl::OpenClBackend;
use sharecheck::backend::wgpu::WgpuBackend;
use sharecheck::backend::Backend;
use sharecheck::bench::{self, Fixture};
use sharecheck::model::validate::TaskMeta;
use sharecheck::model::{HashTask, U256};
use sharecheck::sha256::State;

struct Args {
    api: String,
    device: usize,
    wg: u32,
    kernel: Option<String>,
    batches: Vec<usize>,
    time: Duration,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        api: "opencl".into(),
        device: 0,
        wg: 64,
        kernel: None,
        batches: vec![65_536, 1 << 20],
        time: Duration::from_secs(1),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{k} needs a value"))
        };
        match k.as_str() {
            "--api" => a.api = v()?,
            "--device" => a.device = v()?.parse()?,
            "--wg" => a.wg = v()?.parse()?,
            "--kernel" => a.kernel = Some(std::fs::read_to_string(v()?)?),
            "--batch" => {
                a.batches = v()?
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => a.time = Duration::from_secs_f64(v()?.parse()?),
            _ => anyhow::bail!("unknown argument {k}"),
        }
    }
    Ok(a)
}

/// Nanoseconds per share of `f` (which handles `n` shares), the best of a few runs.
fn ns_per_share(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e9 / n as f64);
    }
    best
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let opts = GpuOptions {
        device: a.device,
        work_group_size: a.wg,
        ..GpuOptions::default()
    };
    let backend: Box<dyn Backend> = match (a.api.as_str(), &a.kernel) {
        ("opencl", None) => Box::new(OpenClBackend::new(opts)?),
        ("opencl", Some(k)) => Box::new(OpenClBackend::with_kernel(opts, k)?),
        ("wgpu", None) => Box::new(WgpuBackend::new(opts)?),
        ("wgpu", Some(k)) => Box::new(WgpuBackend::with_kernel(opts, k)?),
        (api, _) => anyhow::bail!("--api {api}: opencl or wgpu"),
    };
    println!("{} (work group {})", backend.name(), a.wg);
    println!(
        "{:<8} {:>9} {:>10} {:>10} {:>12} {:>14} {:>14}",
        "mode", "batch", "pack ns", "unpack ns", "host M/s", "hash M/s", "checked M/s"
    );
    let max = a.batches.iter().copied().max().unwrap_or(1);
    for mode in ["header", "standard", "stratum"] {
        let fx: Fixture = match mode {
            "header" => bench::header_fixture(max, 7),
            "standard" => bench::standard_fixture(max, 7),
            _ => bench::stratum_fixture(max, 7),
        };
        for &n in &a.batches {
            let tasks: &[HashTask] = &fx.tasks[..n];
            let jobs: &[Arc<_>] = &fx.jobs;
            let meta: Vec<TaskMeta> = (0..n)
                .map(|i| TaskMeta {
                    id: i as u64,
                    share_target: fx.share_target,
                    network_target: U256([1, 0, 0, 0]),
                })
                .collect();
            let stride = gpu::record_stride(tasks);
            let mut rec = vec![0u32; n * stride];
            let mut targets = Vec::new();
            let pack = ns_per_share(n, || {
                let s = gpu::check_tasks(jobs, tasks).expect("fixture tasks are valid");
                gpu::pack_records(tasks, Some(&meta), s, &mut rec, &mut targets);
            });
            // Results as a device would return them: the right tag, flags as the host reads.
            let mut hashes: Vec<State> = vec![[0; 8]; n];
            backend.hash(jobs, tasks, &mut hashes)?;
            let mut words = vec![0u32; n * OUT_WORDS];
            for ((w, h), m) in words.chunks_exact_mut(OUT_WORDS).zip(&hashes).zip(&meta) {
                w[..8].copy_from_slice(h);
                let v = U256::from_hash_state(h);
                w[8] = (7 << 8)
                    | u32::from(v <= m.share_target)
                    | (u32::from(v <= m.network_target) << 1);
            }
            let mut out: Vec<State> = vec![[0; 8]; n];
            let unpack = ns_per_share(n, || {
                gpu::unpack(&words, 7, Some(&meta), &mut out).expect("consistent results");
            });
            let rate = bench::measure(a.time, n, || {
                backend.hash(jobs, tasks, &mut out).expect("backend failed");
            });
            let checked = bench::measure(a.time, n, || {
                backend
                    .hash_checked(jobs, tasks, &meta, &mut out)
                    .expect("backend failed");
            });
            println!(
                "{:<8} {:>9} {:>10.2} {:>10.2} {:>12.1} {:>14.1} {:>14.1}",
                mode,
                n,
                pack,
                unpack,
                1e3 / (pack + unpack),
                rate / 1e6,
                checked / 1e6
            );
        }
    }
    Ok(())
}
