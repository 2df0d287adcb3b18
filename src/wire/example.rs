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
