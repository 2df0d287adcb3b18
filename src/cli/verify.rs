//! `sharecheck verify`: JSON Lines in, one verdict line per share on stdout, a summary on
//! stderr.

use super::args::VerifyArgs;
use sharecheck::config::Config;
use std::io::BufWriter;

pub fn run(cfg: &Config, a: VerifyArgs) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    let backend =
        sharecheck::backend::open_with(&sharecheck::backend::Options::from_config(&cfg.backend))?;
    let started = std::time::Instant::now();
    let out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let on_bad_job = |line: u64, msg: &str| {
        eprintln!("sharecheck: line {line}: job skipped: {msg}");
    };
    let mut validation = cfg.validation.clone();
    validation.audit_headers = a.audit_headers;
    let summary = sharecheck::verify::run(
        super::input(a.file.as_deref())?,
        out,
        backend.as_ref(),
        validation,
        cfg.backend.batch.max_shares,
        on_bad_job,
    )?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "sharecheck: {} [{}] in {secs:.2} s ({:.0} shares/s)",
        summary.line(),
        backend.name(),
        summary.shares() as f64 / secs.max(1e-9)
    );
    Ok(())
}
