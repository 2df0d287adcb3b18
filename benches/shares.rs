//! Shares/s of each CPU path (header and stratum mode, several batch sizes, one thread and
//! all threads) beside the baselines measured in the same run: the sha2 crate and
//! rust-bitcoin, and the GPU backends where a device exists. Run: `cargo bench --bench shares`
//! (add `-- header`, `-- stratum` or `-- gpu` to filter).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sharecheck::backend::cpu::CpuBackend;
use sharecheck::backend::Backend;
use sharecheck::bench::{self, Fixture};
use std::time::Duration;

const BATCHES: [usize; 3] = [256, 4096, 32768];

fn paths(c: &mut Criterion, mode: &str, fx: &Fixture) {
    let mut g = c.benchmark_group(mode);
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    g.sample_size(20);
    for engine in sharecheck::sha256::available() {
        for threads in [1, 0] {
            let b = CpuBackend::new(Some(engine), threads).expect("available engine");
            for batch in BATCHES {
                let tasks = &fx.tasks[..batch];
                let mut out = vec![[0u32; 8]; batch];
                g.throughput(Throughput::Elements(batch as u64));
                let id = format!("{}/{}t", b.name(), b.threads());
                g.bench_with_input(BenchmarkId::new(id, batch), &batch, |bench, _| {
                    bench.iter(|| b.hash(&fx.jobs, tasks, &mut out).expect("cpu backend"))
                });
            }
        }
    }
    let n = 4096;
    g.throughput(Throughput::Elements(n as u64));
    let t = fx.share_target;
    if mode == "header" {
        let hs = bench::baseline_headers(fx);
        let hs = &hs[..n];
        g.bench_function(BenchmarkId::new("baseline:sha2/1t", n), |b| {
            b.iter(|| bench::sha2_headers(hs, &t))
        });
        g.bench_function(BenchmarkId::new("baseline:rust-bitcoin/1t", n), |b| {
            b.iter(|| bench::bitcoin_headers(hs, &t))
        });
    } else {
        let ss = bench::baseline_shares(fx);
        let ss = &ss[..n];
        g.bench_function(BenchmarkId::new("baseline:sha2/1t", n), |b| {
            b.iter(|| bench::sha2_stratum(ss, &t))
        });
        g.bench_function(BenchmarkId::new("baseline:rust-bitcoin/1t", n), |b| {
            b.iter(|| bench::bitcoin_stratum(ss, &t))
        });
    }
    g.finish();
}

/// GPU backends (wgpu, OpenCL) per batch size and mode. Skipped, with a line saying why, where
/// no Vulkan or OpenCL device exists. On lavapipe/PoCL these figures are CPU emulation.
/// Run: `XDG_RUNTIME_DIR=/tmp cargo bench --bench shares -- gpu`.
fn gpu(c: &mut Criterion) {
    const GPU_BATCHES: [usize; 4] = [1 << 10, 1 << 14, 1 << 18, 1 << 20];
    let max = *GPU_BATCHES.iter().max().expect("batches");
    let fixtures = [
        ("header", bench::header_fixture(max, 7)),
        ("stratum", bench::stratum_fixture(max, 7)),
    ];
    for api in ["wgpu", "opencl"] {
        let b = match sharecheck::backend::select::open_gpu(api, &Default::default()) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("gpu/{api}: skipped: {e:#}");
                continue;
            }
        };
        for (mode, fx) in &fixtures {
            let mut g = c.benchmark_group(format!("gpu/{mode}"));
            g.sample_size(10);
            g.measurement_time(Duration::from_secs(3));
            g.warm_up_time(Duration::from_millis(300));
            for batch in GPU_BATCHES {
                let tasks = &fx.tasks[..batch];
                let mut out = vec![[0u32; 8]; batch];
                g.throughput(Throughput::Elements(batch as u64));
                g.bench_with_input(BenchmarkId::new(b.name(), batch), &batch, |bench, _| {
                    bench.iter(|| b.hash(&fx.jobs, tasks, &mut out).expect("gpu backend"))
                });
            }
            g.finish();
        }
    }
}

fn header(c: &mut Criterion) {
    paths(c, "header", &bench::header_fixture(32768, 7));
}

fn stratum(c: &mut Criterion) {
    paths(c, "stratum", &bench::stratum_fixture(32768, 7));
}

criterion_group!(benches, header, stratum, gpu);
criterion_main!(benches);
