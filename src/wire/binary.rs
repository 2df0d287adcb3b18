//! The binary batch format: what travels on Kafka.
//!
//! A message is a 16-byte [`BatchHeader`] followed by `count` fixed-size records. Share and
//! verdict records are plain byte arrays (alignment 1), so a batch is read in place from any
//! buffer without per-share parsing and can be copied as is into a GPU buffer. All integers
//! are little-endian. docs/wire-format.md specifies every byte, with a worked example.

use crate::model::job::{Job, JobStep, MAX_BRANCH, MAX_COINB, MAX_JOB_ID};
use crate::model::share::u32_at;
use crate::model::{Malformed, RecordError, Status, Verdict};
use bytemuck::{Pod, Zeroable};

/// First four bytes of every batch.
pub const MAGIC: [u8; 4] = *b"SCHK";
/// The format version this code reads and writes.
pub const FORMAT_VERSION: u16 = 1;

/// What a batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum RecordKind {
    Shares = 1,
    Verdicts = 2,
    Job = 3,
}

/// Why a batch could not be read. A batch that fails here goes to the dead-letter topic whole;
/// a bad record inside a good batch becomes a `malformed` verdict instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message is {0} bytes, shorter than the 16-byte batch header")]
    TooShort(usize),
    #[error("bad magic {0:02x?}; expected \"SCHK\"")]
    Magic([u8; 4]),
    #[error("format version {0} is not supported (this build reads version {FORMAT_VERSION})")]
    Version(u16),
    #[error("record kind {got} where {want:?} was expected")]
    Kind { got: u16, want: RecordKind },
    #[error("record size {got} does not match {want} for {kind:?}")]
    RecordSize {
        got: u32,
        want: u32,
        kind: RecordKind,
    },
    #[error("header says {count} records of {size} bytes but {body} bytes follow")]
    Length { count: u32, size: u32, body: usize },
    #[error("job message: {0}")]
    Job(String),
    #[error("verdict record: {0}")]
    Verdict(String),
}

/// The 16-byte header in front of every batch.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct BatchHeader {
    pub magic: [u8; 4],
    pub version: [u8; 2],
    pub kind: [u8; 2],
    pub count: [u8; 4],
    pub record_size: [u8; 4],
}

impl BatchHeader {
    pub fn new(kind: RecordKind, count: u32, record_size: u32) -> Self {
        BatchHeader {
            magic: MAGIC,
            version: FORMAT_VERSION.to_le_bytes(),
            kind: (kind as u16).to_le_bytes(),
            count: count.to_le_bytes(),
            record_size: record_size.to_le_bytes(),
        }
    }

    /// Reads and checks the header; returns it and the body after it.
    pub fn parse(msg: &[u8], want: RecordKind) -> Result<(BatchHeader, &[u8]), DecodeError> {
        if msg.len() < 16 {
            return Err(DecodeError::TooShort(msg.len()));
        }
        let h: BatchHeader = bytemuck::pod_read_unaligned(&msg[..16]);
        if h.magic != MAGIC {
            return Err(DecodeError::Magic(h.magic));
        }
        let version = u16::from_le_bytes(h.version);
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let kind = u16::from_le_bytes(h.kind);
        if kind != want as u16 {
            return Err(DecodeError::Kind { got: kind, want });
        }
        Ok((h, &msg[16..]))
    }

    pub fn count(&self) -> u32 {
        u32::from_le_bytes(self.count)
    }

    pub fn record_size(&self) -> u32 {
        u32::from_le_bytes(self.record_size)
    }
}

fn decode_records<T: Pod>(msg: &[u8], kind: RecordKind) -> Result<&[T], DecodeError> {
    let (h, body) = BatchHeader::parse(msg, kind)?;
    let want = std::mem::size_of::<T>() as u32;
    if h.record_size() != want {
        return Err(DecodeError::RecordSize {
            got: h.record_size(),
            want,
            kind,
        });
    }
    let expected = h.count() as u64 * want as u64;
    if body.len() as u64 != expected {
        return Err(DecodeError::Length {
            count: h.count(),
            size: want,
            body: body.len(),
        });
    }
    // Records are byte arrays (alignment 1) of the checked size, so this cannot fail.
    bytemuck::try_cast_slice(body).map_err(|_| DecodeError::Length {
        count: h.count(),
        size: want,
        body: body.len(),
    })
}

fn encode_records<T: Pod>(kind: RecordKind, records: &[T]) -> Vec<u8> {
    let size = std::mem::size_of::<T>();
    let mut out = Vec::with_capacity(16 + std::mem::size_of_val(records));
    out.extend_from_slice(bytemuck::bytes_of(&BatchHeader::new(
        kind,
        records.len() as u32,
        size as u32,
    )));
    out.extend_from_slice(bytemuck::cast_slice(records));
    out
}

// The share record belongs to the validation rules; batches carry it.
pub use crate::model::share::{
    ShareData, ShareRecord, ShareTarget, ShareView, FLAG_TARGET, FLAG_VERSION_BITS, KIND_HEADER,
    KIND_STRATUM,
};

/// Encodes shares as one batch.
pub fn encode_shares(shares: &[ShareRecord]) -> Vec<u8> {
    encode_records(RecordKind::Shares, shares)
}

/// Reads a share batch in place.
pub fn decode_shares(msg: &[u8]) -> Result<&[ShareRecord], DecodeError> {
    decode_records(msg, RecordKind::Shares)
}

/// Verdict flag: hash and difficulty are present.
pub const VFLAG_HASHED: u8 = 1;
/// Verdict flag: header is present (status block).
pub const VFLAG_HEADER: u8 = 2;
/// Verdict flag: the id is known (clear when the input had no usable id).
pub const VFLAG_ID: u8 = 4;

/// One verdict, 136 bytes (a full record; the first 56 bytes are the compact record). See
/// docs/wire-format.md.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct VerdictRecord {
    pub id: [u8; 8],
    pub status: u8,
    pub flags: u8,
    /// `RecordError` code when malformed (0: the reason was only available as text).
    pub error: [u8; 2],
    pub error_arg: u8,
    pub reserved: [u8; 3],
    /// Achieved difficulty, f64.
    pub difficulty: [u8; 8],
    /// Hash in block-explorer order (the digest byte-reversed), as in JSON.
    pub hash: [u8; 32],
    pub header: [u8; 80],
}

const _: () = assert!(std::mem::size_of::<VerdictRecord>() == 136);

impl From<&Verdict> for VerdictRecord {
    fn from(v: &Verdict) -> Self {
        let mut r = VerdictRecord::zeroed();
        if let Some(id) = v.id {
            r.id = id.to_le_bytes();
            r.flags |= VFLAG_ID;
        }
        r.status = v.status as u8;
        if let (Some(h), Some(d)) = (v.hash, v.difficulty) {
            r.flags |= VFLAG_HASHED;
            r.hash = h;
            r.difficulty = d.to_le_bytes();
        }
        if let Some(h) = &v.header {
            r.flags |= VFLAG_HEADER;
            r.header = **h;
        }
        if let Some(Malformed::Record(e)) = &v.error {
            r.error = e.code().to_le_bytes();
            r.error_arg = e.arg();
        }
        if v.status == Status::BadVersion && v.rolling_forbidden {
            r.error = BAD_VERSION_ROLLING_FORBIDDEN.to_le_bytes();
        }
        r
    }
}

impl VerdictRecord {
    /// Back to a verdict. Unknown status codes and error codes are reported, not guessed.
    pub fn to_verdict(&self) -> Result<Verdict, String> {
        let status = Status::from_code(self.status)
            .ok_or_else(|| format!("unknown status code {}", self.status))?;
        let hashed = self.flags & VFLAG_HASHED != 0;
        let error = if status == Status::Malformed {
            let code = u16::from_le_bytes(self.error);
            Some(match RecordError::from_code(code, self.error_arg) {
                Some(e) => Malformed::Record(e),
                None => Malformed::Text(format!("malformed (error code {code})")),
            })
        } else {
            None
        };
        Ok(Verdict {
            id: (self.flags & VFLAG_ID != 0).then(|| u64::from_le_bytes(self.id)),
            status,
            hash: hashed.then_some(self.hash),
            difficulty: hashed.then(|| f64::from_le_bytes(self.difficulty)),
            header: (self.flags & VFLAG_HEADER != 0).then(|| Box::new(self.header)),
            error,
            rolling_forbidden: status == Status::BadVersion
                && u16::from_le_bytes(self.error) == BAD_VERSION_ROLLING_FORBIDDEN,
        })
    }
}

/// The error code of a bad_version verdict whose job allows no version rolling at all.
pub const BAD_VERSION_ROLLING_FORBIDDEN: u16 = 1;

/// Size of a compact verdict record: a [`VerdictRecord`] without its header field. A verdict
/// batch in which no verdict carries a header (no block) uses compact records, so that the
/// verdicts topic carries 56 bytes per share instead of 136.
pub const COMPACT_VERDICT_SIZE: usize = 56;
const FULL_VERDICT_SIZE: usize = std::mem::size_of::<VerdictRecord>();
const _: () = assert!(std::mem::offset_of!(VerdictRecord, header) == COMPACT_VERDICT_SIZE);

/// Encodes verdicts as one batch: compact records unless some verdict carries a header.
pub fn encode_verdicts(verdicts: &[Verdict]) -> Vec<u8> {
    let mut w = VerdictWriter::with_capacity(verdicts.len());
    for v in verdicts {
        w.push(v);
    }
    w.finish()
}

/// Writes a verdict batch one verdict at a time, straight into the message bytes (no list of
/// records in between). Records are compact until a verdict with a header comes; the records
/// written so far are then widened to full ones, which happens only in a batch with a block.
pub struct VerdictWriter {
    buf: Vec<u8>,
    count: u32,
    full: bool,
}

impl VerdictWriter {
    /// A writer with room for `verdicts` compact records.
    pub fn with_capacity(verdicts: usize) -> VerdictWriter {
        let mut buf = Vec::with_capacity(16 + verdicts * COMPACT_VERDICT_SIZE);
        buf.extend_from_slice(bytemuck::bytes_of(&BatchHeader::new(
            RecordKind::Verdicts,
            0,
            COMPACT_VERDICT_SIZE as u32,
        )));
        VerdictWriter {
            buf,
            count: 0,
            full: false,
        }
    }

    pub fn push(&mut self, v: &Verdict) {
        let r = VerdictRecord::from(v);
        if v.header.is_some() && !self.full {
            self.widen();
        }
        let size = if self.full {
            FULL_VERDICT_SIZE
        } else {
            COMPACT_VERDICT_SIZE
        };
        self.buf.extend_from_slice(&bytemuck::bytes_of(&r)[..size]);
        self.count += 1;
    }

    /// Verdicts written so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Rewrites the records so far as full records (their header fields zero).
    fn widen(&mut self) {
        let mut buf = Vec::with_capacity(16 + (self.count as usize + 1) * FULL_VERDICT_SIZE);
        buf.extend_from_slice(&self.buf[..16]);
        for rec in self.buf[16..].chunks_exact(COMPACT_VERDICT_SIZE) {
            buf.extend_from_slice(rec);
            buf.extend_from_slice(&[0; FULL_VERDICT_SIZE - COMPACT_VERDICT_SIZE]);
        }
        buf[12..16].copy_from_slice(&(FULL_VERDICT_SIZE as u32).to_le_bytes());
        self.buf = buf;
        self.full = true;
    }

    /// The message bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf[8..12].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// Reads a verdict batch of either record size (compact, 56 bytes, or full, 136 bytes).
pub fn decode_verdicts(msg: &[u8]) -> Result<Vec<Verdict>, DecodeError> {
    let (h, body) = BatchHeader::parse(msg, RecordKind::Verdicts)?;
    let size = h.record_size();
    if size as usize == FULL_VERDICT_SIZE {
        let recs: &[VerdictRecord] = decode_records(msg, RecordKind::Verdicts)?;
        return recs
            .iter()
            .map(|r| r.to_verdict().map_err(DecodeError::Verdict))
            .collect();
    }
    if size as usize != COMPACT_VERDICT_SIZE {
        return Err(DecodeError::RecordSize {
            got: size,
            want: FULL_VERDICT_SIZE as u32,
            kind: RecordKind::Verdicts,
        });
    }
    if body.len() as u64 != h.count() as u64 * size as u64 {
        return Err(DecodeError::Length {
            count: h.count(),
            size,
            body: body.len(),
        });
    }
    body.chunks_exact(COMPACT_VERDICT_SIZE)
        .map(|c| {
            let mut r = VerdictRecord::zeroed();
            bytemuck::bytes_of_mut(&mut r)[..COMPACT_VERDICT_SIZE].copy_from_slice(c);
            if r.flags & VFLAG_HEADER != 0 {
                return Err(DecodeError::Verdict(
                    "a compact verdict record has no header field, but its header flag is set"
                        .into(),
                ));
            }
            r.to_verdict().map_err(DecodeError::Verdict)
        })
        .collect()
}

/// The number of records a batch message says it holds, after checking its header and
/// length (for counting without decoding).
pub fn batch_count(msg: &[u8], kind: RecordKind) -> Result<u32, DecodeError> {
    let (h, body) = BatchHeader::parse(msg, kind)?;
    if body.len() as u64 != h.count() as u64 * h.record_size() as u64 {
        return Err(DecodeError::Length {
            count: h.count(),
            size: h.record_size(),
            body: body.len(),
        });
    }
    Ok(h.count())
}

/// Fixed part of a job message body, 88 bytes; coinb1, coinb2 and the branch follow.
const JOB_FIXED: usize = 88;
/// Job flag: clean_jobs.
pub const JFLAG_CLEAN: u8 = 1;
/// Job flag: a standard job (SV2 `NewMiningJob`): no coinbase or branch, the 32-byte merkle
/// root (header byte order) follows the fixed part.
pub const JFLAG_STANDARD: u8 = 2;
/// Job flag: a future job (SV2 `NewMiningJob` without min_ntime): a standard job whose
/// prevhash, nbits and ntime are zero until its activation.
pub const JFLAG_FUTURE: u8 = 4;
/// Job flag: an activation (SV2 `SetNewPrevHash`): the job_id of a future job with the
/// prevhash, nbits and ntime (min_ntime) it starts on; no coinbase, branch or merkle root.
pub const JFLAG_ACTIVATE: u8 = 8;

/// Encodes one job as a message (kind 3, count 1, record_size = body length).
pub fn encode_job(job: &Job) -> Vec<u8> {
    let body_len = JOB_FIXED
        + job.coinb1.len()
        + job.coinb2.len()
        + 32 * job.merkle_branch.len()
        + if job.merkle_root.is_some() { 32 } else { 0 };
    let mut out = Vec::with_capacity(16 + body_len);
    out.extend_from_slice(bytemuck::bytes_of(&BatchHeader::new(
        RecordKind::Job,
        1,
        body_len as u32,
    )));
    out.push(job.job_id.len() as u8);
    let standard = if job.merkle_root.is_some() {
        JFLAG_STANDARD
    } else {
        0
    };
    let step = match job.step {
        JobStep::Live => 0,
        JobStep::Future => JFLAG_FUTURE,
        JobStep::Activation => JFLAG_ACTIVATE,
    };
    out.push(if job.clean_jobs { JFLAG_CLEAN } else { 0 } | standard | step);
    out.push(job.merkle_branch.len() as u8);
    out.push(job.extranonce_size.unwrap_or(0));
    for v in [job.version, job.version_mask, job.nbits, job.ntime] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(job.coinb1.len() as u16).to_le_bytes());
    out.extend_from_slice(&(job.coinb2.len() as u16).to_le_bytes());
    out.extend_from_slice(&job.prevhash);
    let mut id = [0u8; 32];
    id[..job.job_id.len()].copy_from_slice(job.job_id.as_bytes());
    out.extend_from_slice(&id);
    out.extend_from_slice(&job.coinb1);
    out.extend_from_slice(&job.coinb2);
    for b in &job.merkle_branch {
        out.extend_from_slice(b);
    }
    if let Some(root) = &job.merkle_root {
        out.extend_from_slice(root);
    }
    out
}

/// Reads one job message.
pub fn decode_job(msg: &[u8]) -> Result<Job, DecodeError> {
    let (h, body) = BatchHeader::parse(msg, RecordKind::Job)?;
    let bad = |s: &str| DecodeError::Job(s.to_string());
    if h.count() != 1 {
        return Err(bad("a job message holds exactly one job"));
    }
    if h.record_size() as usize != body.len() {
        return Err(DecodeError::Length {
            count: 1,
            size: h.record_size(),
            body: body.len(),
        });
    }
    if body.len() < JOB_FIXED {
        return Err(bad("body shorter than the 88-byte fixed part"));
    }
    let id_len = body[0] as usize;
    if id_len == 0 || id_len > MAX_JOB_ID {
        return Err(bad("job_id length must be 1 to 32"));
    }
    if body[1] & !(JFLAG_CLEAN | JFLAG_STANDARD | JFLAG_FUTURE | JFLAG_ACTIVATE) != 0 {
        return Err(bad("unknown job flags"));
    }
    let step = match (body[1] & JFLAG_FUTURE != 0, body[1] & JFLAG_ACTIVATE != 0) {
        (false, false) => JobStep::Live,
        (true, false) if body[1] & JFLAG_STANDARD != 0 => JobStep::Future,
        (true, false) => return Err(bad("a future job must be a standard job")),
        (false, true) if body[1] & JFLAG_STANDARD == 0 => JobStep::Activation,
        (false, true) => return Err(bad("an activation carries no merkle root")),
        (true, true) => return Err(bad("a job is not both future and an activation")),
    };
    let root_len = if body[1] & JFLAG_STANDARD != 0 { 32 } else { 0 };
    let branch = body[2] as usize;
    // Byte 3 was the high byte of a 16-bit branch count, always 0 (≤ 32 entries): jobs
    // written before it held the extranonce size read as "not stated".
    let extranonce_size = (body[3] != 0).then_some(body[3]);
    let c1 = u16::from_le_bytes([body[20], body[21]]) as usize;
    let c2 = u16::from_le_bytes([body[22], body[23]]) as usize;
    if c1 > MAX_COINB || c2 > MAX_COINB || branch > MAX_BRANCH {
        return Err(bad("coinbase or merkle branch longer than supported"));
    }
    if step == JobStep::Activation && (c1 != 0 || c2 != 0 || branch != 0) {
        return Err(bad("an activation carries no coinbase or merkle branch"));
    }
    if body.len() != JOB_FIXED + c1 + c2 + 32 * branch + root_len {
        return Err(bad(
            "body length does not match coinb1, coinb2 and branch lengths",
        ));
    }
    if body[56 + id_len..88].iter().any(|&b| b != 0) {
        return Err(bad("job_id padding is not zero"));
    }
    let job_id = std::str::from_utf8(&body[56..56 + id_len])
        .map_err(|_| bad("job_id is not UTF-8"))?
        .to_string();
    let rest = &body[JOB_FIXED..];
    Ok(Job {
        job_id,
        prevhash: body[24..56].try_into().expect("32"),
        coinb1: rest[..c1].to_vec(),
        coinb2: rest[c1..c1 + c2].to_vec(),
        merkle_branch: rest[c1 + c2..rest.len() - root_len]
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32"))
            .collect(),
        version: u32_at(body, 4),
        version_mask: u32_at(body, 8),
        nbits: u32_at(body, 12),
        ntime: u32_at(body, 16),
        clean_jobs: body[1] & JFLAG_CLEAN != 0,
        extranonce_size,
        merkle_root: (root_len != 0).then(|| rest[rest.len() - 32..].try_into().expect("32")),
        step,
    })
}
