//! Memory held by the duplicate sets: 100 live jobs and 10 M recent shares (100 000 per job),
//! measured as the growth of this process's resident set. Run with
//! `cargo run --release --example dedup_memory`.

use sharecheck::model::job::{Job, DEFAULT_VERSION_MASK};
use sharecheck::model::{Batch, ValidationConfig, Validator};
use sharecheck::wire::binary::{ShareRecord, ShareTarget};

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let jobs = 100;
    let per_job = 100_000u32;
    let mut v = Validator::new(ValidationConfig::default());
    let before = rss_kib();
    for j in 0..jobs {
        v.add_job(Job {
            job_id: format!("job{j}"),
            prevhash: [1; 32],
            coinb1: vec![1; 50],
            coinb2: vec![2; 150],
            merkle_branch: vec![[3; 32]; 12],
            version: 0x2000_0000,
            nbits: 0x1703_4219,
            ntime: 1000,
            clean_jobs: false,
            version_mask: DEFAULT_VERSION_MASK,
            extranonce_size: None,
            merkle_root: None,
            step: Default::default(),
        })
        .unwrap();
    }
    let mut batch = Batch::new();
    for j in 0..jobs {
        let id = format!("job{j}");
        for n in 0..per_job {
            let r = ShareRecord::stratum(
                n as u64,
                &id,
                &(n % 64).to_be_bytes(),
                &n.to_be_bytes(),
                1000,
                n,
                None,
                ShareTarget::Difficulty(1.0),
            );
            v.check(&r, &mut batch);
            if batch.tasks.len() >= 65536 {
                // The verdicts are not needed here: drop the queued work.
                let hashes = vec![[0u32; 8]; batch.tasks.len()];
                batch.finish(&hashes);
            }
        }
    }
    let after = rss_kib();
    println!(
        "{} live jobs, {} duplicate-set entries: resident set grew by {:.1} MiB ({:.1} bytes per share)",
        v.live_jobs(),
        v.seen_entries(),
        (after - before) as f64 / 1024.0,
        (after - before) as f64 * 1024.0 / v.seen_entries() as f64
    );
}
