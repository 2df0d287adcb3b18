//! `sharecheck verify`: JSON Lines in, one verdict line per share line out, in input order.

use crate::backend::Backend;
use crate::model::future::FutureJobs;
use crate::model::{Batch, Status, ValidationConfig, Validator};
use crate::sha256::State;
use crate::wire::jsonl::{self, Line};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

/// Counts by status, and jobs read or rejected.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub by_status: BTreeMap<Status, u64>,
    pub jobs: u64,
    pub bad_jobs: u64,
}

impl Summary {
    pub fn shares(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// One line, e.g. `1000 shares: accepted 900, low_difficulty 100; 3 jobs`.
    pub fn line(&self) -> String {
        let parts: Vec<String> = self
            .by_status
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        let mut s = format!(
            "{} shares: {}; {} jobs",
            self.shares(),
            parts.join(", "),
            self.jobs
        );
        if self.bad_jobs > 0 {
            s.push_str(&format!(" ({} malformed job lines skipped)", self.bad_jobs));
        }
        s
    }
}

/// Reads JSONL from `input`, writes verdict lines to `output`, and reports malformed job lines
/// through `on_bad_job(line_number, message)`. Shares are hashed `batch_size` at a time.
pub fn run(
    input: impl BufRead,
    mut output: impl Write,
    backend: &dyn Backend,
    cfg: ValidationConfig,
    batch_size: usize,
    mut on_bad_job: impl FnMut(u64, &str),
) -> anyhow::Result<Summary> {
    // As many future jobs wait as live jobs are kept.
    let mut future = FutureJobs::new(cfg.max_live_jobs);
    let mut validator = Validator::new(cfg);
    let mut batch = Batch::new();
    let mut hashes: Vec<State> = Vec::new();
    let mut summary = Summary::default();
    let mut flush = |batch: &mut Batch, out: &mut dyn Write, summary: &mut Summary| {
        hashes.clear();
        hashes.resize(batch.tasks.len(), [0; 8]);
        backend.hash_checked(&batch.jobs, &batch.tasks, batch.meta(), &mut hashes)?;
        for v in batch.finish(&hashes) {
            *summary.by_status.entry(v.status).or_default() += 1;
            out.write_all(jsonl::verdict_json(&v).as_bytes())?;
            out.write_all(b"\n")?;
        }
        anyhow::Ok(())
    };
    for line in jsonl::numbered_lines(input) {
        let (n, line) = line?;
        let line = match line {
            Ok(l) => l,
            Err(v) => {
                batch.push_verdict(v);
                continue;
            }
        };
        match jsonl::parse_line(&line) {
            Line::Blank => {}
            // Future jobs wait for their activation (SetNewPrevHash) before any validator
            // sees them, as in the node's jobs reader.
            Line::Job(Ok(job)) => match future.resolve(job).and_then(|j| match j {
                Some(j) => validator.add_job(j),
                None => Ok(()),
            }) {
                Ok(()) => summary.jobs += 1,
                Err(e) => {
                    summary.bad_jobs += 1;
                    on_bad_job(n, &e.to_string());
                }
            },
            Line::Job(Err(e)) => {
                summary.bad_jobs += 1;
                on_bad_job(n, &e);
            }
            Line::Share(Err(v)) => batch.push_verdict(v),
            Line::Share(Ok(rec)) => {
                validator.check(&rec, &mut batch);
            }
        }
        if batch.tasks.len() >= batch_size || batch.len() >= 4 * batch_size {
            flush(&mut batch, &mut output, &mut summary)?;
        }
    }
    flush(&mut batch, &mut output, &mut summary)?;
    output.flush()?;
    Ok(summary)
}
