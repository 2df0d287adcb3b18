//! docs/wire-format.md's worked example is the code's output, byte for byte.

use sharecheck::model::{Batch, ValidationConfig, Validator};
use sharecheck::wire::binary;
use sharecheck::wire::jsonl::{self, Line};

fn dump(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, row)| {
            let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:04x}  {}", i * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn worked_example_matches_the_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/wire-format.md"))
        .unwrap();
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
    let backend = sharecheck::backend::open("cpu:scalar", 1).unwrap();
    let mut hashes = vec![[0u32; 8]; batch.tasks.len()];
    backend
        .hash(&batch.jobs, &batch.tasks, &mut hashes)
        .unwrap();
    let verdicts = batch.finish(&hashes);
    for (what, bytes) in [
        ("job message", job_msg),
        ("share batch", share_msg),
        ("verdict batch", binary::encode_verdicts(&verdicts)),
    ] {
        let block = format!(
            "{what} ({} bytes):\n\n```text\n{}\n```",
            bytes.len(),
            dump(&bytes)
        );
        assert!(
            doc.contains(&block),
            "docs/wire-format.md lacks the current {what}:\n{block}"
        );
    }
}
