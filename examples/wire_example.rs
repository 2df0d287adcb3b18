//! Prints the worked example of docs/wire-format.md: the genesis block as a stratum share
//! batch, its job message, and the verdict batch it gets. `cargo run --example wire_example`.

use sharecheck::model::{Batch, ValidationConfig, Validator};
use sharecheck::wire::binary;
use sharecheck::wire::jsonl::{self, Line};

fn dump(title: &str, bytes: &[u8]) {
    println!("{title} ({} bytes):", bytes.len());
    for (i, row) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
        println!("{:04x}  {}", i * 16, hex.join(" "));
    }
    println!();
}

fn main() {
    let (job, share) = sharecheck::wire::example::genesis_lines();
    let Line::Job(Ok(job)) = jsonl::parse_line(&job) else {
        panic!("job line")
    };
    let Line::Share(Ok(rec)) = jsonl::parse_line(&share) else {
        panic!("share line")
    };
    let job_msg = binary::encode_job(&job);
    let share_msg = binary::encode_shares(&[rec]);
    let mut v = Validator::new(ValidationConfig::default());
    v.add_job(job).unwrap();
    let mut batch = Batch::new();
    v.check(&rec, &mut batch);
    let backend = sharecheck::backend::open("cpu", 1).unwrap();
    let mut hashes = vec![[0u32; 8]; batch.tasks.len()];
    backend
        .hash(&batch.jobs, &batch.tasks, &mut hashes)
        .unwrap();
    let verdicts = batch.finish(&hashes);
    dump("job message", &job_msg);
    dump("share batch", &share_msg);
    dump("verdict batch", &binary::encode_verdicts(&verdicts));
}
