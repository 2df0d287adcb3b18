//! JSON Lines: the input of `sharecheck verify` ({"job": …} / {"share": …} per line) and the
//! verdict lines it writes.

use super::binary::{ShareRecord, ShareTarget};
use super::hex;
use crate::model::job::{
    swap_words, Job, JobStep, DEFAULT_VERSION_MASK, MAX_EXTRANONCE1, MAX_EXTRANONCE2, MAX_JOB_ID,
};
use crate::model::share::MAX_SV2_EXTRANONCE;
use crate::model::{Malformed, Verdict};
use serde::Serialize;
use serde_json::{Map, Value};

/// One input line, read.
#[derive(Debug)]
pub enum Line {
    /// Blank line: ignored.
    Blank,
    /// A job, or why it cannot be used (reported on stderr; the line is skipped).
    Job(Result<Job, String>),
    /// A share record, or the malformed verdict it gets (id when one was usable).
    Share(Result<ShareRecord, Verdict>),
}

/// The lines of a JSON Lines input, numbered from 1, each as its text or, when it is not
/// UTF-8, as a malformed verdict saying so: a line that is not text does not end the input.
/// Only an I/O error does.
pub fn numbered_lines(
    mut input: impl std::io::BufRead,
) -> impl Iterator<Item = std::io::Result<(u64, Result<String, Verdict>)>> {
    let mut n = 0u64;
    let mut buf = Vec::new();
    std::iter::from_fn(move || {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                n += 1;
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                let text = String::from_utf8(std::mem::take(&mut buf)).map_err(|e| {
                    let at = e.utf8_error().valid_up_to() + 1;
                    let msg = format!("line {n} is not UTF-8 (byte {at})");
                    Verdict::malformed(None, Malformed::Text(msg))
                });
                Some(Ok((n, text)))
            }
            Err(e) => Some(Err(e)),
        }
    })
}

/// Reads one line.
pub fn parse_line(line: &str) -> Line {
    let line = line.trim();
    if line.is_empty() {
        return Line::Blank;
    }
    let obj = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return bad(None, "line is not a JSON object".into()),
        Err(e) => return bad(None, format!("line is not valid JSON: {e}")),
    };
    match (obj.get("job"), obj.get("share")) {
        (Some(Value::Object(j)), None) => Line::Job(parse_job(j)),
        (Some(_), None) => Line::Job(Err("\"job\" must be an object".into())),
        (None, Some(Value::Object(s))) => Line::Share(parse_share(s)),
        (None, Some(_)) => bad(None, "\"share\" must be an object".into()),
        (Some(_), Some(_)) => bad(
            None,
            "a line holds either \"job\" or \"share\", not both".into(),
        ),
        (None, None) => bad(None, "line has neither \"job\" nor \"share\"".into()),
    }
}

fn bad(id: Option<u64>, msg: String) -> Line {
    Line::Share(Err(Verdict::malformed(id, Malformed::Text(msg))))
}

fn str_field<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a str, String> {
    match o.get(k) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("{k} must be a string")),
        None => Err(format!("missing field {k}")),
    }
}

fn hex_fixed<const N: usize>(o: &Map<String, Value>, k: &str) -> Result<[u8; N], String> {
    let s = str_field(o, k)?;
    if s.len() != 2 * N {
        return Err(format!("{k} must be {} hex digits, got {}", 2 * N, s.len()));
    }
    let mut out = [0u8; N];
    hex::decode_into(s, &mut out).map_err(|e| format!("{k}: {e}"))?;
    Ok(out)
}

fn hex_var(o: &Map<String, Value>, k: &str) -> Result<Vec<u8>, String> {
    hex::decode(str_field(o, k)?).map_err(|e| format!("{k}: {e}"))
}

/// A u32 sent as 8 hex digits of its big-endian bytes, as stratum sends version, nbits, ntime,
/// nonce and version_bits.
fn hex_u32(o: &Map<String, Value>, k: &str) -> Result<u32, String> {
    Ok(u32::from_be_bytes(hex_fixed::<4>(o, k)?))
}

/// `"future": true` or `"activate": true` (SV2's two steps), or neither.
fn job_step(o: &Map<String, Value>) -> Result<JobStep, String> {
    let flag = |k: &str| match o.get(k) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(false),
        Some(Value::Bool(true)) => Ok(true),
        Some(_) => Err(format!("{k} must be true or false")),
    };
    match (flag("future")?, flag("activate")?) {
        (false, false) => Ok(JobStep::Live),
        (true, false) => Ok(JobStep::Future),
        (false, true) => Ok(JobStep::Activation),
        (true, true) => Err("a job is not both future and activate".into()),
    }
}

/// An activation (SV2 `SetNewPrevHash`): job_id, prevhash, nbits and ntime (min_ntime), and
/// nothing of a job's own.
fn parse_activation(o: &Map<String, Value>, job_id: String) -> Result<Job, String> {
    for k in [
        "coinb1",
        "coinb2",
        "merkle_branch",
        "merkle_root",
        "version",
    ] {
        if o.contains_key(k) {
            return Err(format!(
                "an activation (activate: true) carries no {k}: that is its future job's"
            ));
        }
    }
    Ok(Job {
        job_id,
        prevhash: swap_words(&hex_fixed::<32>(o, "prevhash")?),
        coinb1: Vec::new(),
        coinb2: Vec::new(),
        merkle_branch: Vec::new(),
        version: 0,
        nbits: hex_u32(o, "nbits")?,
        ntime: hex_u32(o, "ntime")?,
        clean_jobs: true,
        version_mask: 0,
        extranonce_size: None,
        merkle_root: None,
        step: JobStep::Activation,
    })
}

/// Reads a job object.
pub fn parse_job(o: &Map<String, Value>) -> Result<Job, String> {
    let job_id = str_field(o, "job_id")?.to_string();
    if job_id.is_empty() || job_id.len() > MAX_JOB_ID {
        return Err(format!("job_id must be 1 to {MAX_JOB_ID} bytes"));
    }
    let step = job_step(o)?;
    if step == JobStep::Activation {
        return parse_activation(o, job_id);
    }
    let future = step == JobStep::Future;
    if future && !o.contains_key("merkle_root") {
        return Err("a future job is a standard job: it needs a merkle_root".into());
    }
    if future {
        for k in ["prevhash", "nbits", "ntime"] {
            if o.contains_key(k) {
                return Err(format!(
                    "a future job has no {k} yet: its activation (activate: true) brings it"
                ));
            }
        }
    }
    // A standard job (SV2 NewMiningJob) states its merkle root and has no coinbase.
    let merkle_root = match o.get("merkle_root") {
        None | Some(Value::Null) => None,
        Some(_) => Some(hex_fixed::<32>(o, "merkle_root")?),
    };
    let standard = merkle_root.is_some();
    let branch = match o.get("merkle_branch") {
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) if s.len() == 64 => {
                    let mut b = [0u8; 32];
                    hex::decode_into(s, &mut b).map_err(|e| format!("merkle_branch[{i}]: {e}"))?;
                    Ok(b)
                }
                _ => Err(format!("merkle_branch[{i}] must be 64 hex digits")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("merkle_branch must be an array".into()),
        None if standard => Vec::new(),
        None => return Err("missing field merkle_branch".into()),
    };
    let clean_jobs = match o.get("clean_jobs") {
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("clean_jobs must be true or false".into()),
        // A future job is made clean by its activation.
        None if future => false,
        None => return Err("missing field clean_jobs".into()),
    };
    let (prevhash, nbits, ntime) = if future {
        ([0; 32], 0, 0)
    } else {
        (
            swap_words(&hex_fixed::<32>(o, "prevhash")?),
            hex_u32(o, "nbits")?,
            hex_u32(o, "ntime")?,
        )
    };
    let version_mask = if o.contains_key("version_mask") {
        hex_u32(o, "version_mask")?
    } else {
        DEFAULT_VERSION_MASK
    };
    let extranonce_size = match o.get("extranonce_size") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| (1..=32).contains(n))
                .ok_or("extranonce_size must be an integer 1 to 32")? as u8,
        ),
    };
    Ok(Job {
        job_id,
        prevhash,
        coinb1: coinbase_part(o, "coinb1", standard)?,
        coinb2: coinbase_part(o, "coinb2", standard)?,
        merkle_branch: branch,
        version: hex_u32(o, "version")?,
        nbits,
        ntime,
        clean_jobs,
        version_mask,
        extranonce_size,
        merkle_root,
        step,
    })
}

/// coinb1 or coinb2: required, except in a standard job (which has none).
fn coinbase_part(o: &Map<String, Value>, k: &str, standard: bool) -> Result<Vec<u8>, String> {
    if standard && !o.contains_key(k) {
        return Ok(Vec::new());
    }
    hex_var(o, k)
}

/// A u32 of an SV2 share: a JSON integer, or 8 hex digits as stratum writes them.
fn u32_field(o: &Map<String, Value>, k: &str) -> Result<u32, String> {
    match o.get(k) {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("{k} must be an integer 0 to 2^32-1 or 8 hex digits")),
        _ => hex_u32(o, k),
    }
}

/// An SV2 share's job id: a string, or the integer SV2 carries (written in decimal).
fn sv2_job_id(o: &Map<String, Value>) -> Result<String, String> {
    let id = match o.get("job_id") {
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        _ => str_field(o, "job_id")?.to_string(),
    };
    if id.is_empty() || id.len() > MAX_JOB_ID {
        return Err(format!("job_id must be 1 to {MAX_JOB_ID} bytes"));
    }
    Ok(id)
}

/// An SV2 share ("kind": "sv2_standard" or "sv2_extended").
fn parse_sv2_share(
    id: u64,
    kind: &str,
    o: &Map<String, Value>,
    target: ShareTarget,
) -> Result<ShareRecord, String> {
    let standard = match kind {
        "sv2_standard" => true,
        "sv2_extended" => false,
        _ => {
            return Err(format!(
                "unknown kind {kind:?} (sv2_standard or sv2_extended; stratum and header shares need none)"
            ))
        }
    };
    let mut allowed = vec![
        "id",
        "kind",
        "job_id",
        "ntime",
        "nonce",
        "version",
        "difficulty",
    ];
    allowed.extend(["target", "expect", "channel_id", "sequence_number"]);
    if !standard {
        allowed.extend(["extranonce_prefix", "extranonce"]);
    }
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("an {kind} share has no {k}"));
    }
    let job_id = sv2_job_id(o)?;
    let (ntime, nonce, version) = (
        u32_field(o, "ntime")?,
        u32_field(o, "nonce")?,
        u32_field(o, "version")?,
    );
    if standard {
        return Ok(ShareRecord::sv2_standard(
            id, &job_id, ntime, nonce, version, target,
        ));
    }
    let prefix = match o.get("extranonce_prefix") {
        None => Vec::new(),
        Some(_) => hex_var(o, "extranonce_prefix")?,
    };
    let en = hex_var(o, "extranonce")?;
    if prefix.len() + en.len() > MAX_SV2_EXTRANONCE {
        return Err(format!(
            "extranonce_prefix and extranonce are {} bytes; at most {MAX_SV2_EXTRANONCE} are supported",
            prefix.len() + en.len()
        ));
    }
    Ok(ShareRecord::sv2_extended(
        id, &job_id, &prefix, &en, ntime, nonce, version, target,
    ))
}

/// Reads a share object into a record; anything wrong is a malformed verdict.
pub fn parse_share(o: &Map<String, Value>) -> Result<ShareRecord, Verdict> {
    let id = match o.get("id") {
        Some(Value::Number(n)) => n.as_u64(),
        _ => None,
    };
    let Some(id) = id else {
        return Err(Verdict::malformed(
            None,
            Malformed::Text("share has no usable id (an integer 0 to 2^64-1)".into()),
        ));
    };
    parse_share_fields(id, o).map_err(|m| Verdict::malformed(Some(id), Malformed::Text(m)))
}

fn parse_share_fields(id: u64, o: &Map<String, Value>) -> Result<ShareRecord, String> {
    let target = match (o.get("difficulty"), o.get("target")) {
        (Some(Value::Number(n)), None) => {
            ShareTarget::Difficulty(n.as_f64().ok_or("difficulty must be a number")?)
        }
        (Some(_), None) => return Err("difficulty must be a number".into()),
        (None, Some(_)) => ShareTarget::Target(hex_fixed::<32>(o, "target")?),
        (Some(_), Some(_)) => return Err("give difficulty or target, not both".into()),
        (None, None) => return Err("missing field difficulty (or target)".into()),
    };
    if let Some(kind) = o.get("kind") {
        let kind = kind.as_str().ok_or("kind must be a string")?;
        return parse_sv2_share(id, kind, o, target);
    }
    if o.contains_key("header") {
        for k in [
            "job_id",
            "extranonce1",
            "extranonce2",
            "ntime",
            "nonce",
            "version_bits",
        ] {
            if o.contains_key(k) {
                return Err(format!("a header share has no {k}"));
            }
        }
        let header = hex_fixed::<80>(o, "header")?;
        return Ok(ShareRecord::header(id, &header, target));
    }
    let job_id = str_field(o, "job_id")?;
    if job_id.is_empty() || job_id.len() > MAX_JOB_ID {
        return Err(format!("job_id must be 1 to {MAX_JOB_ID} bytes"));
    }
    let en1 = hex_var(o, "extranonce1")?;
    if en1.len() > MAX_EXTRANONCE1 {
        return Err(format!(
            "extranonce1 is {} bytes; at most {MAX_EXTRANONCE1} are supported",
            en1.len()
        ));
    }
    let en2 = hex_var(o, "extranonce2")?;
    if en2.is_empty() || en2.len() > MAX_EXTRANONCE2 {
        return Err(format!(
            "extranonce2 is {} bytes; it must be 1 to {MAX_EXTRANONCE2}",
            en2.len()
        ));
    }
    let version_bits = match o.get("version_bits") {
        None | Some(Value::Null) => None,
        Some(_) => Some(hex_u32(o, "version_bits")?),
    };
    Ok(ShareRecord::stratum(
        id,
        job_id,
        &en1,
        &en2,
        hex_u32(o, "ntime")?,
        hex_u32(o, "nonce")?,
        version_bits,
        target,
    ))
}

#[derive(Serialize)]
struct VerdictJson<'a> {
    id: Option<u64>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    difficulty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// The SV2 `SubmitShares.Error` code of a rejected share.
    #[serde(skip_serializing_if = "Option::is_none")]
    sv2_error: Option<&'static str>,
}

/// One verdict as a JSON line (without the newline).
pub fn verdict_json(v: &Verdict) -> String {
    let err = v.error.as_ref().map(|e| e.to_string());
    serde_json::to_string(&VerdictJson {
        id: v.id,
        status: v.status.as_str(),
        hash: v.hash.map(|h| hex::encode(&h)),
        difficulty: v.difficulty,
        header: v.header.as_ref().map(|h| hex::encode(&h[..])),
        error: err.as_deref(),
        sv2_error: v.sv2_error(),
    })
    .expect("verdicts always serialize")
}

/// Job as a JSON object (stratum conventions), for `gen` and `send`.
pub fn job_json(job: &Job) -> Value {
    let mut m = Map::new();
    m.insert("job_id".into(), job.job_id.clone().into());
    let prev = |m: &mut Map<String, Value>| {
        m.insert(
            "prevhash".into(),
            hex::encode(&swap_words(&job.prevhash)).into(),
        );
        m.insert("nbits".into(), format!("{:08x}", job.nbits).into());
        m.insert("ntime".into(), format!("{:08x}", job.ntime).into());
    };
    match job.step {
        JobStep::Live => prev(&mut m),
        JobStep::Future => {
            m.insert("future".into(), true.into());
        }
        JobStep::Activation => {
            m.insert("activate".into(), true.into());
            prev(&mut m);
            let mut o = Map::new();
            o.insert("job".into(), Value::Object(m));
            return Value::Object(o);
        }
    }
    if let Some(root) = &job.merkle_root {
        m.insert("merkle_root".into(), hex::encode(root).into());
    } else {
        m.insert("coinb1".into(), hex::encode(&job.coinb1).into());
        m.insert("coinb2".into(), hex::encode(&job.coinb2).into());
        m.insert(
            "merkle_branch".into(),
            Value::Array(
                job.merkle_branch
                    .iter()
                    .map(|b| hex::encode(b).into())
                    .collect(),
            ),
        );
    }
    m.insert("version".into(), format!("{:08x}", job.version).into());
    m.insert("clean_jobs".into(), job.clean_jobs.into());
    if job.version_mask != DEFAULT_VERSION_MASK {
        m.insert(
            "version_mask".into(),
            format!("{:08x}", job.version_mask).into(),
        );
    }
    if let Some(n) = job.extranonce_size {
        m.insert("extranonce_size".into(), n.into());
    }
    let mut o = Map::new();
    o.insert("job".into(), Value::Object(m));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The difficulty of a header share line as the record carries it.
    fn difficulty_of(text: &str) -> f64 {
        let line = format!(
            "{{\"share\": {{\"id\": 1, \"header\": \"{}\", \"difficulty\": {text}}}}}",
            "00".repeat(80)
        );
        let Line::Share(Ok(rec)) = parse_line(&line) else {
            panic!("{line}");
        };
        f64::from_le_bytes(rec.target[..8].try_into().unwrap())
    }

    /// A difficulty is read correctly rounded, so that the share target is floor(diff1 / d)
    /// of the number sent: serde_json's default float parser put 42 % of random difficulties
    /// one ulp off (2.586613629468878e-10 was read as the next lower double).
    #[test]
    fn difficulties_are_read_correctly_rounded() {
        for text in [
            "2.586613629468878e-10",
            "1e-12",
            "0.1",
            "65536",
            "1.7976931348623157e308",
        ] {
            let want: f64 = text.parse().unwrap();
            assert_eq!(difficulty_of(text).to_bits(), want.to_bits(), "{text}");
        }
        // Random doubles in the difficulties' range, written as Rust writes them (the
        // shortest text that reads back as the same double).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = f64::from_bits((x >> 12) | (0x3e0u64 << 52)) * 1e-3;
            let text = format!("{d:e}");
            assert_eq!(difficulty_of(&text).to_bits(), d.to_bits(), "{text}");
        }
    }
}
