//! Profiles the whole per-share validation of `sharecheck bench`'s whole rows on one kind of
//! share: `cargo run --release --example whole_profile -- sv2-standard 8192 20` (mode,
//! shares per round, rounds), e.g. under `perf record`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("sv2-standard", String::as_str);
    let shares: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8192);
    let rounds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let Some(gen_mode) = sharecheck::gen::GenMode::from_name(mode) else {
        eprintln!("whole_profile: unknown mode {mode:?} (a `sharecheck gen --mode` name)");
        std::process::exit(2);
    };
    let w = sharecheck::bench::workload(gen_mode, shares);
    let backend = sharecheck::backend::cpu::CpuBackend::new(None, 1).expect("cpu");
    let jobs = w.items.len() - w.shares;
    let start = std::time::Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        bytes += sharecheck::bench::validate_workload(&backend, &w);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{mode}: {} shares and {jobs} jobs per round, {:.0} shares/s ({bytes} verdict bytes)",
        w.shares,
        (w.shares as f64 * rounds as f64) / secs
    );
}
