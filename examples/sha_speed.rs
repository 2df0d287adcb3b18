//! Single-thread throughput of every engine this CPU supports.
//!
//! `cargo run --release --example sha_speed` (add `widths` to also time every SHA-NI interleave
//! width).

use std::hint::black_box;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sharecheck::sha256::{self, Engine, State};

const BATCH: usize = 4096;
/// Length of one timing run; the best of `RUNS` is reported, since on a shared machine the
/// slower runs measure the neighbours rather than the code.
const RUN: Duration = Duration::from_millis(100);
const RUNS: usize = 5;

/// Millions of items per second of `f`, which processes `BATCH` items per call.
fn rate(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = 0f64;
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < RUN {
            f();
            calls += 1;
        }
        best = best.max((calls * BATCH as u64) as f64 / start.elapsed().as_secs_f64() / 1e6);
    }
    best
}

fn row(e: &dyn Engine, label: &str) {
    let mut seed = 0x9e37_79b9u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut states: Vec<State> = (0..BATCH).map(|_| [(); 8].map(|_| next())).collect();
    let right: Vec<State> = (0..BATCH).map(|_| [(); 8].map(|_| next())).collect();
    let blocks: Vec<[u32; 16]> = (0..BATCH).map(|_| [(); 16].map(|_| next())).collect();
    let headers: Vec<[u32; 20]> = (0..BATCH).map(|_| [(); 20].map(|_| next())).collect();
    let mut out = vec![[0u32; 8]; BATCH];

    let compress = rate(|| e.compress(black_box(&mut states), black_box(&blocks)));
    let d80 = rate(|| e.sha256d_80(black_box(&headers), black_box(&mut out)));
    let d64 = rate(|| e.sha256d_64(black_box(&mut states), black_box(&right)));
    println!(
        "{label:<14} {:>5} {compress:>12.1} {d80:>12.1} {d64:>12.1}",
        e.lanes()
    );
}

fn main() {
    println!(
        "{:<14} {:>5} {:>12} {:>12} {:>12}",
        "engine", "lanes", "compress M/s", "d80 M/s", "d64 M/s"
    );
    for name in sha256::available() {
        row(sha256::engine(name).unwrap(), name);
    }
    row(&sha256::lanes16::LANES16, "lanes16");

    #[cfg(target_arch = "x86_64")]
    if std::env::args().any(|a| a == "widths") {
        for w in [1, 2, 4, 8] {
            if let Some(e) = sha256::shani::detect_width_for_bench(w) {
                row(e, &format!("sha-ni x{w}"));
            }
        }
    }

    let headers: Vec<[u8; 80]> = (0..BATCH)
        .map(|i| core::array::from_fn(|j| (i * 31 + j * 7) as u8))
        .collect();
    let mut out = vec![[0u8; 32]; BATCH];
    let d80 = rate(|| {
        for (h, o) in black_box(&headers).iter().zip(out.iter_mut()) {
            *o = Sha256::digest(Sha256::digest(h)).into();
        }
        black_box(&out);
    });
    println!(
        "{:<14} {:>5} {:>12} {d80:>12.1} {:>12}",
        "sha2 crate", 1, "-", "-"
    );
}
