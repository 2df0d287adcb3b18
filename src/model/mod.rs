//! The domain: jobs, shares, verdicts, targets, and the validation rules in one place
//! ([`validate`]). Every backend hashes what [`validate::Validator`] prepares and nothing more,
//! so the contract cannot drift between backends.

pub mod future;
pub mod job;
pub mod share;
pub mod target;
pub mod validate;

pub use job::{Job, JobCtx};
pub use target::U256;
pub use validate::{Batch, HashTask, Prepared, ValidationConfig, Validator};

use serde::Serialize;
use std::fmt;

/// The outcome for one share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Status {
    Accepted = 0,
    Block = 1,
    LowDifficulty = 2,
    Duplicate = 3,
    Stale = 4,
    UnknownJob = 5,
    BadNtime = 6,
    BadVersion = 7,
    Malformed = 8,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Accepted,
        Status::Block,
        Status::LowDifficulty,
        Status::Duplicate,
        Status::Stale,
        Status::UnknownJob,
        Status::BadNtime,
        Status::BadVersion,
        Status::Malformed,
    ];

    /// The name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Block => "block",
            Status::LowDifficulty => "low_difficulty",
            Status::Duplicate => "duplicate",
            Status::Stale => "stale",
            Status::UnknownJob => "unknown_job",
            Status::BadNtime => "bad_ntime",
            Status::BadVersion => "bad_version",
            Status::Malformed => "malformed",
        }
    }

    pub fn from_code(code: u8) -> Option<Status> {
        Status::ALL.get(code as usize).copied()
    }

    pub fn from_name(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict for one share.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The share's id; `None` when the input had no usable id.
    pub id: Option<u64>,
    pub status: Status,
    /// When the share was hashed: the hash in block-explorer order (digest byte-reversed).
    pub hash: Option<[u8; 32]>,
    /// When the share was hashed: achieved difficulty, DIFF1 / hash.
    pub difficulty: Option<f64>,
    /// When the status is `block`: the 80-byte header to submit to the network.
    pub header: Option<Box<[u8; 80]>>,
    /// When the status is `malformed`: what is wrong.
    pub error: Option<Malformed>,
    /// When the status is `bad_version`: the job allows no version rolling at all (its mask
    /// is 0), so SV2's answer is `version-rolling-not-allowed`.
    pub rolling_forbidden: bool,
}

impl Verdict {
    /// A verdict decided without hashing.
    pub fn rejected(id: u64, status: Status) -> Verdict {
        Verdict {
            id: Some(id),
            status,
            hash: None,
            difficulty: None,
            header: None,
            error: None,
            rolling_forbidden: false,
        }
    }

    /// A bad_version verdict for a share on a job with version mask `mask`.
    pub fn bad_version(id: u64, mask: u32) -> Verdict {
        Verdict {
            rolling_forbidden: mask == 0,
            ..Verdict::rejected(id, Status::BadVersion)
        }
    }

    /// The Stratum V2 `SubmitShares.Error` code that answers this verdict (mining_sv2's
    /// constants), None for a share to count (accepted, block). A bad_version share's code
    /// is `version-rolling-not-allowed` when its job allows no rolling at all, else
    /// `invalid-non-rollable-version-bit`, as SRI answers.
    pub fn sv2_error(&self) -> Option<&'static str> {
        Some(match self.status {
            Status::Accepted | Status::Block => return None,
            Status::LowDifficulty => "difficulty-too-low",
            Status::Duplicate => "duplicate-share",
            Status::Stale => "stale-share",
            Status::UnknownJob => "invalid-job-id",
            Status::BadNtime => "invalid-share",
            Status::BadVersion if self.rolling_forbidden => "version-rolling-not-allowed",
            Status::BadVersion => "invalid-non-rollable-version-bit",
            Status::Malformed => match self.error {
                Some(Malformed::Record(
                    RecordError::ExtranonceSize(_) | RecordError::Sv2ExtranonceLength(_),
                )) => "bad-extranonce-size",
                _ => "invalid-share",
            },
        })
    }

    pub fn malformed(id: Option<u64>, error: Malformed) -> Verdict {
        Verdict {
            id,
            status: Status::Malformed,
            hash: None,
            difficulty: None,
            header: None,
            error: Some(error),
            rolling_forbidden: false,
        }
    }
}

/// Why a share is malformed. Record-level problems carry a stable code (they travel in binary
/// verdicts); problems found while reading JSON carry the parser's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    Record(RecordError),
    Text(String),
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Record(e) => e.fmt(f),
            Malformed::Text(s) => f.write_str(s),
        }
    }
}

impl From<RecordError> for Malformed {
    fn from(e: RecordError) -> Self {
        Malformed::Record(e)
    }
}

/// A problem with a share record, whatever format it arrived in. The discriminant is the
/// `error` code carried by binary verdicts (docs/wire-format.md); never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[repr(u16)]
pub enum RecordError {
    #[error(
        "unknown share kind {0} (1 = stratum, 2 = header, 3 = SV2 standard, 4 = SV2 extended)"
    )]
    UnknownKind(u8) = 1,
    #[error("unknown flag bits {0:#04x} set")]
    UnknownFlags(u8) = 2,
    #[error("reserved bytes must be zero")]
    Reserved = 3,
    #[error("job_id is {0} bytes; it must be 1 to 32 bytes")]
    JobIdLength(u8) = 4,
    #[error("job_id is not valid UTF-8")]
    JobIdUtf8 = 5,
    #[error("extranonce1 is {0} bytes; at most 16 are supported")]
    Extranonce1Length(u8) = 6,
    #[error("extranonce2 is {0} bytes; it must be 1 to 16 bytes")]
    Extranonce2Length(u8) = 7,
    #[error("difficulty must be a finite number greater than 0")]
    Difficulty = 8,
    #[error("target must not be zero")]
    ZeroTarget = 9,
    #[error("the header's nbits is not a valid compact target (negative or overflowing)")]
    HeaderNbits = 10,
    #[error("bytes after extranonce or job_id are not zero")]
    Padding = 11,
    #[error("header shares carry no job fields")]
    HeaderWithJobFields = 12,
    #[error("extranonce1 + extranonce2 are {0} bytes, not the job's extranonce_size")]
    ExtranonceSize(u8) = 13,
    #[error("the share's kind does not fit its job: stratum and SV2 extended shares need a job with a coinbase, SV2 standard shares a job with a merkle_root")]
    JobKind = 14,
    #[error("an SV2 standard share carries no extranonce")]
    StandardWithExtranonce = 15,
    #[error("the extranonce prefix and extranonce are {0} bytes; at most 32 are supported")]
    Sv2ExtranonceLength(u8) = 16,
}

impl RecordError {
    pub fn code(&self) -> u16 {
        match *self {
            RecordError::UnknownKind(_) => 1,
            RecordError::UnknownFlags(_) => 2,
            RecordError::Reserved => 3,
            RecordError::JobIdLength(_) => 4,
            RecordError::JobIdUtf8 => 5,
            RecordError::Extranonce1Length(_) => 6,
            RecordError::Extranonce2Length(_) => 7,
            RecordError::Difficulty => 8,
            RecordError::ZeroTarget => 9,
            RecordError::HeaderNbits => 10,
            RecordError::Padding => 11,
            RecordError::HeaderWithJobFields => 12,
            RecordError::ExtranonceSize(_) => 13,
            RecordError::JobKind => 14,
            RecordError::StandardWithExtranonce => 15,
            RecordError::Sv2ExtranonceLength(_) => 16,
        }
    }

    /// Rebuilds an error from a binary verdict's code and its one-byte argument.
    pub fn from_code(code: u16, arg: u8) -> Option<RecordError> {
        Some(match code {
            1 => RecordError::UnknownKind(arg),
            2 => RecordError::UnknownFlags(arg),
            3 => RecordError::Reserved,
            4 => RecordError::JobIdLength(arg),
            5 => RecordError::JobIdUtf8,
            6 => RecordError::Extranonce1Length(arg),
            7 => RecordError::Extranonce2Length(arg),
            8 => RecordError::Difficulty,
            9 => RecordError::ZeroTarget,
            10 => RecordError::HeaderNbits,
            11 => RecordError::Padding,
            12 => RecordError::HeaderWithJobFields,
            13 => RecordError::ExtranonceSize(arg),
            14 => RecordError::JobKind,
            15 => RecordError::StandardWithExtranonce,
            16 => RecordError::Sv2ExtranonceLength(arg),
            _ => return None,
        })
    }

    /// The one-byte argument carried beside the code.
    pub fn arg(&self) -> u8 {
        match *self {
            RecordError::UnknownKind(a)
            | RecordError::UnknownFlags(a)
            | RecordError::JobIdLength(a)
            | RecordError::Extranonce1Length(a)
            | RecordError::Extranonce2Length(a)
            | RecordError::ExtranonceSize(a)
            | RecordError::Sv2ExtranonceLength(a) => a,
            _ => 0,
        }
    }
}
