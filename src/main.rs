//! The `sharecheck` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sharecheck::config::Config;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "sharecheck",
    version,
    about = "Share validation for Bitcoin mining pools"
)]
struct Cli {
    /// Configuration file (TOML); see config/sharecheck.toml. Flags override it.
    #[arg(long, global = true, env = "SHARECHECK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate shares from JSON Lines (FILE or stdin); one verdict line per share on stdout.
    Verify {
        /// Backend: cpu, cpu:scalar, cpu:sha-ni, cpu:avx2, cpu:avx512.
        #[arg(long)]
        backend: Option<String>,
        /// CPU worker threads (0 = one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Shares hashed per batch.
        #[arg(long)]
        batch: Option<usize>,
        /// Input file; stdin when absent or "-".
        file: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("sharecheck: error: {e:#}");
        std::process::exit(2);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    match cli.cmd {
        Cmd::Verify {
            backend,
            threads,
            batch,
            file,
        } => {
            if let Some(b) = backend {
                cfg.backend.kind = b;
            }
            if let Some(t) = threads {
                cfg.backend.threads = t;
            }
            if let Some(b) = batch {
                cfg.backend.batch.max_shares = b;
            }
            cfg.check()?;
            let backend = sharecheck::backend::open(&cfg.backend.kind, cfg.backend.threads)?;
            let stdout = std::io::stdout().lock();
            let out = BufWriter::with_capacity(1 << 16, stdout);
            let on_bad_job = |line: u64, msg: &str| {
                eprintln!("sharecheck: line {line}: job skipped: {msg}");
            };
            let summary = match file.as_deref() {
                Some(p) if p.as_os_str() != "-" => {
                    let f = std::fs::File::open(p)
                        .with_context(|| format!("cannot open {}", p.display()))?;
                    sharecheck::verify::run(
                        BufReader::with_capacity(1 << 16, f),
                        out,
                        backend.as_ref(),
                        cfg.validation.clone(),
                        cfg.backend.batch.max_shares,
                        on_bad_job,
                    )?
                }
                _ => sharecheck::verify::run(
                    std::io::stdin().lock(),
                    out,
                    backend.as_ref(),
                    cfg.validation.clone(),
                    cfg.backend.batch.max_shares,
                    on_bad_job,
                )?,
            };
            eprintln!("sharecheck: {} [{}]", summary.line(), backend.name());
        }
    }
    Ok(())
}
