//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde_json::{json, Value};
use sharecheck::backend::Backend;
use sharecheck::model::ValidationConfig;

/// The genesis block's coinbase transaction.
pub const GENESIS_COINBASE: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";
pub const GENESIS_HEADER: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
pub const GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

/// The genesis coinbase split as a pool would: coinb1 ‖ extranonce1 (4) ‖ extranonce2 (4) ‖
/// coinb2, cut inside the scriptSig.
pub fn genesis_split() -> (String, String, String, String) {
    let i = 2 * 45;
    let c = GENESIS_COINBASE;
    (
        c[..i].to_string(),
        c[i..i + 8].to_string(),
        c[i + 8..i + 16].to_string(),
        c[i + 16..].to_string(),
    )
}

pub fn genesis_job(job_id: &str, clean: bool) -> Value {
    let (c1, _, _, c2) = genesis_split();
    json!({"job": {
        "job_id": job_id, "prevhash": "0".repeat(64), "coinb1": c1, "coinb2": c2,
        "merkle_branch": [], "version": "00000001", "nbits": "1d00ffff",
        "ntime": "495fab29", "clean_jobs": clean
    }})
}

pub fn genesis_share(id: u64, job_id: &str) -> Value {
    let (_, e1, e2, _) = genesis_split();
    json!({"share": {
        "id": id, "job_id": job_id, "extranonce1": e1, "extranonce2": e2,
        "ntime": "495fab29", "nonce": "7c2bac1d", "difficulty": 1
    }})
}

/// Runs `verify` in-process on JSON lines; returns the verdict objects.
pub fn verify_lines(lines: &[String], backend: &dyn Backend, batch: usize) -> Vec<Value> {
    verify_lines_with(lines, backend, batch, ValidationConfig::default())
}

pub fn verify_lines_with(
    lines: &[String],
    backend: &dyn Backend,
    batch: usize,
    cfg: ValidationConfig,
) -> Vec<Value> {
    let input = lines.join("\n");
    let mut out = Vec::new();
    sharecheck::verify::run(input.as_bytes(), &mut out, backend, cfg, batch, |_, _| {})
        .expect("verify runs");
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn verify_values(lines: &[Value]) -> Vec<Value> {
    let b = sharecheck::backend::open("cpu:scalar", 1).unwrap();
    let lines: Vec<String> = lines.iter().map(|v| v.to_string()).collect();
    verify_lines(&lines, b.as_ref(), 64)
}

/// `verify --audit-headers`: header shares judged against their own nbits, without a job.
#[allow(dead_code)]
pub fn audit_values(lines: &[Value]) -> Vec<Value> {
    let b = sharecheck::backend::open("cpu:scalar", 1).unwrap();
    let lines: Vec<String> = lines.iter().map(|v| v.to_string()).collect();
    let cfg = ValidationConfig {
        audit_headers: true,
        ..Default::default()
    };
    verify_lines_with(&lines, b.as_ref(), 64, cfg)
}

/// The genesis block as a standard job (SV2 `NewMiningJob` with its `SetNewPrevHash`): the
/// job a header share of the genesis header belongs to.
#[allow(dead_code)]
pub fn genesis_standard_job(id: &str) -> Value {
    serde_json::json!({"job": {
        "job_id": id,
        "prevhash": "00".repeat(32),
        "merkle_root": &GENESIS_HEADER[72..136],
        "version": "00000001",
        "nbits": "1d00ffff",
        "ntime": "495fab29",
        "clean_jobs": false,
    }})
}

/// Every CPU path this machine supports, as backends.
pub fn cpu_backends() -> Vec<Box<dyn Backend>> {
    sharecheck::sha256::available()
        .into_iter()
        .map(|n| sharecheck::backend::open(&format!("cpu:{n}"), 2).unwrap())
        .collect()
}
