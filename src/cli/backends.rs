//! `sharecheck backends`: every backend and device, with its self-test and shares/s.

use super::args::BackendsArgs;
use sharecheck::config::Config;

pub fn run(cfg: &Config, a: BackendsArgs) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    let mut opts = sharecheck::backend::Options::from_config(&cfg.backend);
    if let Some(b) = a.batch {
        anyhow::ensure!(b > 0, "--batch must be > 0");
        opts.batch = b;
    }
    opts.measure = std::time::Duration::from_secs_f64(a.seconds.max(0.01));
    let probes = sharecheck::backend::select::probe_all(&opts, true);
    if a.json {
        for p in &probes {
            println!("{}", serde_json::to_string(p)?);
        }
        return Ok(());
    }
    println!(
        "{:<12} {:>6} {:<44} {:<9} {:<9} {:>12} {:>14} {:>8}  note",
        "kind", "device", "name", "available", "self-test", "shares/s", "ceiling M/s", "of limit"
    );
    for p in &probes {
        println!(
            "{:<12} {:>6} {:<44} {:<9} {:<9} {:>12} {:>14} {:>8}  {}",
            p.kind,
            p.device
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            p.name,
            if p.available { "yes" } else { "no" },
            match p.self_test {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "-",
            },
            p.shares_per_sec
                .map(|r| format!("{r:.0}"))
                .unwrap_or_else(|| "-".into()),
            p.ceiling_compressions_per_sec
                .map(|c| format!("{:.1}", c / 1e6))
                .unwrap_or_else(|| "-".into()),
            p.fraction_of_ceiling
                .map(|x| format!("{:.0} %", x * 100.0))
                .unwrap_or_else(|| "-".into()),
            p.reason.as_deref().unwrap_or(""),
        );
    }
    println!(
        "(measured on stratum shares at batch {}; a GPU's ceiling is its SHA-256 compressions/s \
         in a one-block kernel, of limit = shares/s x 44 compressions / ceiling)",
        opts.batch
    );
    Ok(())
}
