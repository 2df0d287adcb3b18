//! The worked example of docs/wire-format.md (the genesis block as a stratum job and share),
//! shared by the doc test that keeps the document and the code in step.

/// The genesis coinbase split into coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2.
const COINB1: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104";
const EXTRANONCE1: &str = "45546865";
const EXTRANONCE2: &str = "2054696d";
const COINB2: &str = "65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";

/// The job line and the share line of the example.
pub fn genesis_lines() -> (String, String) {
    let job = format!(
        r#"{{"job": {{"job_id": "6a", "prevhash": "{}", "coinb1": "{COINB1}", "coinb2": "{COINB2}", "merkle_branch": [], "version": "00000001", "nbits": "1d00ffff", "ntime": "495fab29", "clean_jobs": true}}}}"#,
        "0".repeat(64)
    );
    let share = format!(
        r#"{{"share": {{"id": 1, "job_id": "6a", "extranonce1": "{EXTRANONCE1}", "extranonce2": "{EXTRANONCE2}", "ntime": "495fab29", "nonce": "7c2bac1d", "difficulty": 1}}}}"#
    );
    (job, share)
}

/// The example's three messages, as the code encodes them: the job message, the share batch,
/// and the verdict batch the share gets (hashed with the scalar reference).
pub fn messages() -> Vec<(&'static str, Vec<u8>)> {
    use crate::model::{Batch, ValidationConfig, Validator};
    use crate::wire::binary;
    use crate::wire::jsonl::{parse_line, Line};
    let (job, share) = genesis_lines();
    let (Line::Job(Ok(job)), Line::Share(Ok(rec))) = (parse_line(&job), parse_line(&share)) else {
        unreachable!("the example lines are valid");
    };
    let job_msg = binary::encode_job(&job);
    let share_msg = binary::encode_shares(&[rec]);
    let mut v = Validator::new(ValidationConfig::default());
    v.add_job(job).expect("valid job");
    let mut batch = Batch::new();
    v.check(&rec, &mut batch);
    let hashes: Vec<_> = batch
        .tasks
        .iter()
        .map(|t| crate::model::validate::reference_hash(&batch.jobs, t))
        .collect();
    let verdicts = batch.finish(&hashes);
    vec![
        ("job message", job_msg),
        ("share batch", share_msg),
        ("verdict batch", binary::encode_verdicts(&verdicts)),
    ]
}

/// Sixteen bytes a row, offset first, as in docs/wire-format.md.
pub fn hex_dump(bytes: &[u8]) -> String {
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
