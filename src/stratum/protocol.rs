//! Stratum V1's JSON-RPC lines: requests read, responses and notifications written, and the
//! de-facto error codes of mining.submit.

use crate::model::job::swap_words;
use crate::model::{Job, Status};
use serde_json::{json, Value};

/// The de-facto mining.submit error codes (cgminer, ckpool, btcpool).
pub const OTHER: i64 = 20;
pub const STALE: i64 = 21;
pub const DUPLICATE: i64 = 22;
pub const LOW_DIFFICULTY: i64 = 23;
pub const UNAUTHORIZED: i64 = 24;
pub const NOT_SUBSCRIBED: i64 = 25;

/// One request line.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Value,
    pub method: String,
    pub params: Vec<Value>,
}

/// Reads a request line; the error is the reply's message.
pub fn parse(line: &[u8]) -> Result<Request, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut o) = v else {
        return Err("a request must be a JSON object".into());
    };
    let id = o.remove("id").unwrap_or(Value::Null);
    let method = match o.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err("the request has no method".into()),
    };
    let params = match o.remove("params") {
        Some(Value::Array(p)) => p,
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err("params must be an array".into()),
    };
    Ok(Request { id, method, params })
}

/// A response with a result.
pub fn ok(id: &Value, result: Value) -> String {
    json!({"id": id, "result": result, "error": null}).to_string()
}

/// An error response: `[code, message, null]`.
pub fn err(id: &Value, code: i64, message: &str) -> String {
    json!({"id": id, "result": null, "error": [code, message, null]}).to_string()
}

/// mining.notify for `job`.
pub fn notify(job: &Job, clean_jobs: bool) -> String {
    let branch: Vec<String> = job.merkle_branch.iter().map(hex).collect();
    json!({"id": null, "method": "mining.notify", "params": [
        job.job_id,
        hex(swap_words(&job.prevhash)),
        hex(&job.coinb1),
        hex(&job.coinb2),
        branch,
        format!("{:08x}", job.version),
        format!("{:08x}", job.nbits),
        format!("{:08x}", job.ntime),
        clean_jobs,
    ]})
    .to_string()
}

/// mining.set_difficulty.
pub fn set_difficulty(d: f64) -> String {
    json!({"id": null, "method": "mining.set_difficulty", "params": [d]}).to_string()
}

/// The error a verdict's status answers mining.submit with; None: the share counts.
pub fn submit_error(status: Status) -> Option<(i64, &'static str)> {
    Some(match status {
        Status::Accepted | Status::Block => return None,
        Status::LowDifficulty => (LOW_DIFFICULTY, "Low difficulty share"),
        Status::Duplicate => (DUPLICATE, "Duplicate share"),
        Status::Stale => (STALE, "Stale share"),
        Status::UnknownJob => (STALE, "Job not found"),
        Status::BadNtime => (OTHER, "ntime out of range"),
        Status::BadVersion => (OTHER, "version bits outside the job's mask"),
        Status::Malformed => (OTHER, "Malformed share"),
    })
}

pub fn hex(b: impl AsRef<[u8]>) -> String {
    crate::wire::hex::encode(b.as_ref())
}

/// A param as a string, or the reply's message.
pub fn str_param<'a>(params: &'a [Value], i: usize, name: &str) -> Result<&'a str, String> {
    params
        .get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{name} (param {i}) must be a string"))
}

/// A param of exactly `bytes` bytes of hex.
pub fn hex_param(params: &[Value], i: usize, name: &str, bytes: usize) -> Result<Vec<u8>, String> {
    let s = str_param(params, i, name)?;
    if s.len() != bytes * 2 {
        return Err(format!(
            "{name} must be {bytes} bytes ({} hex digits)",
            bytes * 2
        ));
    }
    crate::wire::hex::decode(s).map_err(|_| format!("{name} is not hex"))
}

/// A param of 8 hex digits: the big-endian u32 stratum sends.
pub fn u32_param(params: &[Value], i: usize, name: &str) -> Result<u32, String> {
    let b = hex_param(params, i, name, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_or_say_why_not() {
        let r = parse(br#"{"id":7,"method":"mining.submit","params":["w","1"]}"#).unwrap();
        assert_eq!(r.id, json!(7));
        assert_eq!(r.method, "mining.submit");
        assert_eq!(r.params.len(), 2);
        let r = parse(br#"{"id":"a","method":"mining.subscribe"}"#).unwrap();
        assert!(r.params.is_empty());
        for bad in [
            &b"garbage"[..],
            b"[1,2]",
            br#"{"id":1}"#,
            br#"{"method":"x","params":3}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn submit_errors_follow_the_de_facto_codes() {
        assert_eq!(submit_error(Status::Accepted), None);
        assert_eq!(submit_error(Status::Block), None);
        assert_eq!(submit_error(Status::Duplicate).unwrap().0, 22);
        assert_eq!(submit_error(Status::LowDifficulty).unwrap().0, 23);
        assert_eq!(submit_error(Status::Stale).unwrap().0, 21);
        assert_eq!(submit_error(Status::UnknownJob).unwrap().0, 21);
        assert_eq!(submit_error(Status::Malformed).unwrap().0, 20);
    }

    #[test]
    fn params_are_checked() {
        let p = vec![json!("00a0e000"), json!("zz"), json!(5)];
        assert_eq!(u32_param(&p, 0, "v").unwrap(), 0x00a0_e000);
        assert!(hex_param(&p, 1, "x", 1).unwrap_err().contains("not hex"));
        assert!(hex_param(&p, 0, "x", 2).unwrap_err().contains("2 bytes"));
        assert!(str_param(&p, 2, "n").is_err());
        assert!(str_param(&p, 3, "n").is_err());
    }
}
