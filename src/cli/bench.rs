//! `sharecheck bench`: shares/s of each CPU path (and, when asked, each GPU API) beside the
//! sha2 and rust-bitcoin baselines.

use super::args::BenchArgs;
use sharecheck::bench::{self, BenchPlan, Figure};

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    let Chosen { mut engines, gpus } = chosen(a.backend.as_deref())?;
    engines.dedup();
    // A fast wrong path must never be reported: check each against the reference first.
    for e in &engines {
        let b = sharecheck::backend::cpu::CpuBackend::new(Some(e), 1)?;
        bench::check_against_reference(&b, &bench::stratum_fixture(300, 1))?;
        bench::check_against_reference(&b, &bench::header_fixture(300, 1))?;
        bench::check_against_reference(&b, &bench::standard_fixture(600, 1))?;
    }
    let plan = BenchPlan {
        engines,
        batches: list(&a.batch, "--batch")?,
        threads: list(&a.threads, "--threads")?,
        modes: match a.mode.as_str() {
            "header" => vec!["header"],
            "standard" => vec!["standard"],
            "stratum" => vec!["stratum"],
            _ => vec!["header", "standard", "stratum"],
        },
        time: std::time::Duration::from_secs_f64(a.seconds.max(0.01)),
    };
    anyhow::ensure!(
        plan.batches.iter().all(|&b| b > 0),
        "--batch sizes must be > 0"
    );
    let json = a.json;
    let report = |f: &Figure| {
        if json {
            println!("{}", serde_json::to_string(f).expect("figure serializes"));
        } else {
            eprint!(".");
        }
    };
    let mut figs = bench::run(&plan, report)?;
    for (api, required) in gpus {
        let g = sharecheck::backend::gpu::GpuOptions::default();
        let opened = sharecheck::backend::select::open_gpu(api, &g).and_then(|b| {
            // As for the CPU paths: never report a fast wrong backend.
            sharecheck::backend::select::self_test(b.as_ref())?;
            Ok(b)
        });
        match opened {
            Ok(b) => {
                let ceiling = ceiling_of(b.as_ref());
                figs.extend(bench::run_backend(b.as_ref(), &plan, ceiling, report)?)
            }
            Err(e) if !required => eprintln!("\nsharecheck: {api} skipped: {e:#}"),
            Err(e) => return Err(e),
        }
    }
    if !json {
        eprintln!();
        print_table(&figs);
    }
    Ok(())
}

/// The device's ceiling (compressions/s), measured before its rows; a ceiling kernel that
/// fails leaves the rows without it, and says why.
fn ceiling_of(b: &dyn sharecheck::backend::Backend) -> Option<f64> {
    match b.ceiling()? {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("\nsharecheck: {}: no ceiling: {e:#}", b.name());
            None
        }
    }
}

/// What `--backend` names: CPU paths, and GPU APIs each with whether it must open (a named
/// one must; those of `all` that cannot are skipped).
struct Chosen<'a> {
    engines: Vec<&'static str>,
    gpus: Vec<(&'a str, bool)>,
}

fn chosen(arg: Option<&str>) -> anyhow::Result<Chosen<'_>> {
    let mut c = Chosen {
        engines: Vec::new(),
        gpus: Vec::new(),
    };
    let Some(list) = arg else {
        c.engines = sharecheck::sha256::available();
        return Ok(c);
    };
    for n in list.split(',').map(str::trim) {
        match n {
            "all" => {
                c.engines.extend(sharecheck::sha256::available());
                c.gpus.extend([("wgpu", false), ("opencl", false)]);
            }
            "wgpu" | "opencl" => c.gpus.push((n, true)),
            n => c.engines.push(
                sharecheck::sha256::engine(n.trim_start_matches("cpu:"))
                    .map_err(anyhow::Error::msg)?
                    .name(),
            ),
        }
    }
    Ok(c)
}

fn list<T: std::str::FromStr>(s: &str, what: &str) -> anyhow::Result<Vec<T>> {
    s.split(',')
        .map(|x| x.trim().parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("{what}: expected a comma-separated list, got {s:?}"))
}

fn print_table(figs: &[Figure]) {
    println!(
        "{:<24} {:<8} {:>6} {:>7} {:>14} {:>14} {:>8} {:>8} {:>8}",
        "backend",
        "mode",
        "batch",
        "threads",
        "shares/s",
        "per core",
        "x sha2",
        "x btc",
        "of limit"
    );
    for f in figs {
        let base = |name: &str| {
            figs.iter()
                .find(|b| b.backend == name && b.mode == f.mode)
                .map(|b| b.shares_per_sec)
                .unwrap_or(f64::NAN)
        };
        // A GPU backend's figure is per device, not per core; beside it, the fraction of the
        // device's own compression rate it reaches.
        if f.threads == 0 {
            let limit = f
                .fraction_of_ceiling
                .map_or_else(|| "-".to_string(), |x| format!("{:.0} %", x * 100.0));
            println!(
                "{:<24} {:<8} {:>6} {:>7} {:>14.0} {:>14} {:>8} {:>8} {:>8}",
                f.backend, f.mode, f.batch, "-", f.shares_per_sec, "-", "-", "-", limit
            );
            continue;
        }
        let per_core = f.shares_per_sec / f.threads as f64;
        println!(
            "{:<24} {:<8} {:>6} {:>7} {:>14.0} {:>14.0} {:>8.2} {:>8.2} {:>8}",
            f.backend,
            f.mode,
            f.batch,
            f.threads,
            f.shares_per_sec,
            per_core,
            per_core / base("baseline:sha2"),
            per_core / base("baseline:rust-bitcoin"),
            "-",
        );
    }
    let mut seen = Vec::new();
    for f in figs {
        if let Some(c) = f.ceiling_compressions_per_sec {
            if !seen.contains(&&f.backend) {
                seen.push(&f.backend);
                println!(
                    "{}: ceiling {:.1} M SHA-256 compressions/s (one-block kernel); \
                     of limit = shares/s x compressions a share (header 3, standard 2, \
                     stratum 44) / ceiling",
                    f.backend,
                    c / 1e6
                );
            }
        }
    }
}
