//! What tests/sri_sv2.rs and benches/validation.rs both need to turn SRI's SV2 messages into
//! sharecheck's JSON Lines: hex, the prev hash in stratum's order, an extended job's line.
#![allow(dead_code)]

use mining_sv2::NewExtendedMiningJobOwned;
use serde_json::{json, Value};

/// BIP320's general purpose bits: what an SV2 job with version rolling lets a miner roll.
/// SRI's `VERSION_ROLLING_MASK`.
pub const ROLLING_MASK: u32 = 0x1fff_ffe0;

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A prev hash in header byte order (as SV2 carries it) in stratum's word-swapped order.
pub fn stratum_prevhash(p: &[u8; 32]) -> String {
    let mut w = *p;
    for c in w.chunks_mut(4) {
        c.reverse();
    }
    hex(&w)
}

/// The fields every job line has: id, prev hash, version, nbits, min_ntime, clean_jobs.
pub fn job_fields(
    job_id: u32,
    prev_hash: &[u8; 32],
    version: u32,
    nbits: u32,
    min_ntime: u32,
    clean: bool,
) -> Value {
    json!({
        "job_id": job_id.to_string(),
        "prevhash": stratum_prevhash(prev_hash),
        "version": format!("{version:08x}"),
        "nbits": format!("{nbits:08x}"),
        "ntime": format!("{min_ntime:08x}"),
        "clean_jobs": clean,
    })
}

/// The fields an extended job adds: coinbase parts, merkle branch, version mask (as the job
/// allows rolling) and the extranonce size `en` its coinbase reserves.
pub fn add_extended_fields(j: &mut Value, m: &NewExtendedMiningJobOwned, en: usize) {
    let o = j.as_object_mut().expect("a job's fields are an object");
    o.insert("coinb1".into(), hex(m.coinbase_tx_prefix.as_bytes()).into());
    o.insert("coinb2".into(), hex(m.coinbase_tx_suffix.as_bytes()).into());
    let branch: Vec<String> = m.merkle_path.iter().map(|h| hex(h.as_bytes())).collect();
    o.insert("merkle_branch".into(), branch.into());
    let mask = if m.version_rolling_allowed {
        ROLLING_MASK
    } else {
        0
    };
    o.insert("version_mask".into(), format!("{mask:08x}").into());
    o.insert("extranonce_size".into(), en.into());
}
