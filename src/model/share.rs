//! The share record: a share as it travels, 128 bytes (docs/wire-format.md specifies every
//! byte), and check 1 of the contract, [`ShareRecord::check`], which turns a record into a
//! typed [`ShareView`] or says why it is malformed. The record is what the validation rules
//! read, so it belongs to them; the binary batch format frames records into messages.

use super::job::{MAX_EXTRANONCE1, MAX_EXTRANONCE2, MAX_JOB_ID};
use super::target::{target_from_compact, target_from_difficulty, U256};
use super::RecordError;
use bytemuck::{Pod, Zeroable};

/// Share kinds.
pub const KIND_STRATUM: u8 = 1;
pub const KIND_HEADER: u8 = 2;
/// A Stratum V2 standard share (`SubmitSharesStandard`) on a standard job.
pub const KIND_SV2_STANDARD: u8 = 3;
/// A Stratum V2 extended share (`SubmitSharesExtended`): a stratum share whose version is the
/// full version and whose extranonce (the channel's prefix, then the share's own) is packed.
pub const KIND_SV2_EXTENDED: u8 = 4;
/// Longest extranonce of an extended share, prefix included (SV2's limit).
pub const MAX_SV2_EXTRANONCE: usize = 32;
/// Share flag: `version_bits` is present (stratum shares).
pub const FLAG_VERSION_BITS: u8 = 1;
/// Share flag: the target field holds an explicit 32-byte big-endian target; otherwise its
/// first 8 bytes hold the difficulty as an f64 and the rest are zero.
pub const FLAG_TARGET: u8 = 2;

/// One share, 128 bytes. See docs/wire-format.md for the byte layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct ShareRecord {
    pub id: [u8; 8],
    pub kind: u8,
    pub flags: u8,
    pub job_id_len: u8,
    pub extranonce1_len: u8,
    pub extranonce2_len: u8,
    pub reserved: [u8; 3],
    /// Explicit target (big-endian) or difficulty (f64, little-endian, first 8 bytes).
    pub target: [u8; 32],
    /// Stratum: ntime, nonce, version_bits, reserved (u32 each), job_id[32], extranonce1[16],
    /// extranonce2[16]. Header share: the 80 header bytes.
    pub payload: [u8; 80],
}

const _: () = assert!(std::mem::size_of::<ShareRecord>() == 128);

/// A share record's fields, checked and typed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShareData<'a> {
    Stratum {
        job_id: &'a str,
        extranonce1: &'a [u8],
        extranonce2: &'a [u8],
        ntime: u32,
        nonce: u32,
        version_bits: Option<u32>,
        /// `version_bits` is the full version (SV2 extended shares), not the rolled bits.
        full_version: bool,
    },
    /// An SV2 standard share: the header is its job's, with this version, ntime and nonce.
    Standard {
        job_id: &'a str,
        ntime: u32,
        nonce: u32,
        version: u32,
    },
    Header {
        header: &'a [u8; 80],
        network_target: U256,
    },
}

/// A checked share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareView<'a> {
    pub id: u64,
    pub target: U256,
    pub data: ShareData<'a>,
}

/// The little-endian u32 at byte `at` of `b`.
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl ShareRecord {
    pub fn id(&self) -> u64 {
        u64::from_le_bytes(self.id)
    }

    /// A stratum share. Panics only on lengths above the documented maxima, which callers
    /// check first (the JSON reader does).
    #[allow(clippy::too_many_arguments)]
    pub fn stratum(
        id: u64,
        job_id: &str,
        extranonce1: &[u8],
        extranonce2: &[u8],
        ntime: u32,
        nonce: u32,
        version_bits: Option<u32>,
        target: ShareTarget,
    ) -> ShareRecord {
        let mut r = ShareRecord::zeroed();
        r.id = id.to_le_bytes();
        r.kind = KIND_STRATUM;
        r.job_id_len = job_id.len() as u8;
        r.extranonce1_len = extranonce1.len() as u8;
        r.extranonce2_len = extranonce2.len() as u8;
        r.set_target(target);
        r.payload[0..4].copy_from_slice(&ntime.to_le_bytes());
        r.payload[4..8].copy_from_slice(&nonce.to_le_bytes());
        if let Some(v) = version_bits {
            r.flags |= FLAG_VERSION_BITS;
            r.payload[8..12].copy_from_slice(&v.to_le_bytes());
        }
        r.payload[16..16 + job_id.len()].copy_from_slice(job_id.as_bytes());
        r.payload[48..48 + extranonce1.len()].copy_from_slice(extranonce1);
        r.payload[64..64 + extranonce2.len()].copy_from_slice(extranonce2);
        r
    }

    /// An SV2 standard share (`SubmitSharesStandard`; `version` is the full version). Panics
    /// only on a job id over 32 bytes, which callers check first.
    pub fn sv2_standard(
        id: u64,
        job_id: &str,
        ntime: u32,
        nonce: u32,
        version: u32,
        target: ShareTarget,
    ) -> ShareRecord {
        let mut r = ShareRecord::zeroed();
        r.id = id.to_le_bytes();
        r.kind = KIND_SV2_STANDARD;
        r.job_id_len = job_id.len() as u8;
        r.set_target(target);
        r.payload[0..4].copy_from_slice(&ntime.to_le_bytes());
        r.payload[4..8].copy_from_slice(&nonce.to_le_bytes());
        r.payload[8..12].copy_from_slice(&version.to_le_bytes());
        r.payload[16..16 + job_id.len()].copy_from_slice(job_id.as_bytes());
        r
    }

    /// An SV2 extended share (`SubmitSharesExtended`): the channel's extranonce prefix and the
    /// share's extranonce, 32 bytes at most together. Panics only on lengths above the
    /// maxima, which callers check first.
    #[allow(clippy::too_many_arguments)]
    pub fn sv2_extended(
        id: u64,
        job_id: &str,
        extranonce_prefix: &[u8],
        extranonce: &[u8],
        ntime: u32,
        nonce: u32,
        version: u32,
        target: ShareTarget,
    ) -> ShareRecord {
        let mut r = ShareRecord::sv2_standard(id, job_id, ntime, nonce, version, target);
        r.kind = KIND_SV2_EXTENDED;
        r.extranonce1_len = extranonce_prefix.len() as u8;
        r.extranonce2_len = extranonce.len() as u8;
        let e1 = 48 + extranonce_prefix.len();
        r.payload[48..e1].copy_from_slice(extranonce_prefix);
        r.payload[e1..e1 + extranonce.len()].copy_from_slice(extranonce);
        r
    }

    /// A header share.
    pub fn header(id: u64, header: &[u8; 80], target: ShareTarget) -> ShareRecord {
        let mut r = ShareRecord::zeroed();
        r.id = id.to_le_bytes();
        r.kind = KIND_HEADER;
        r.set_target(target);
        r.payload = *header;
        r
    }

    fn set_target(&mut self, target: ShareTarget) {
        match target {
            ShareTarget::Difficulty(d) => self.target[..8].copy_from_slice(&d.to_le_bytes()),
            ShareTarget::Target(t) => {
                self.flags |= FLAG_TARGET;
                self.target = t;
            }
        }
    }

    /// Checks every field and returns the typed view, or what is wrong.
    pub fn check(&self) -> Result<ShareView<'_>, RecordError> {
        let id = self.id();
        let target = if self.flags & FLAG_TARGET != 0 {
            let t = U256::from_be_bytes(&self.target);
            if t.is_zero() {
                return Err(RecordError::ZeroTarget);
            }
            t
        } else {
            if self.target[8..].iter().any(|&b| b != 0) {
                return Err(RecordError::Reserved);
            }
            let d = f64::from_le_bytes(self.target[..8].try_into().expect("8 bytes"));
            target_from_difficulty(d).ok_or(RecordError::Difficulty)?
        };
        if self.reserved != [0; 3] {
            return Err(RecordError::Reserved);
        }
        let data = match self.kind {
            KIND_STRATUM => {
                let unknown = self.flags & !(FLAG_VERSION_BITS | FLAG_TARGET);
                if unknown != 0 {
                    return Err(RecordError::UnknownFlags(unknown));
                }
                let p = &self.payload;
                if u32_at(p, 12) != 0 || (self.flags & FLAG_VERSION_BITS == 0 && u32_at(p, 8) != 0)
                {
                    return Err(RecordError::Reserved);
                }
                let (jl, e1, e2) = (
                    self.job_id_len as usize,
                    self.extranonce1_len as usize,
                    self.extranonce2_len as usize,
                );
                if jl == 0 || jl > MAX_JOB_ID {
                    return Err(RecordError::JobIdLength(self.job_id_len));
                }
                if e1 > MAX_EXTRANONCE1 {
                    return Err(RecordError::Extranonce1Length(self.extranonce1_len));
                }
                if e2 == 0 || e2 > MAX_EXTRANONCE2 {
                    return Err(RecordError::Extranonce2Length(self.extranonce2_len));
                }
                if p[16 + jl..48].iter().any(|&b| b != 0)
                    || p[48 + e1..64].iter().any(|&b| b != 0)
                    || p[64 + e2..80].iter().any(|&b| b != 0)
                {
                    return Err(RecordError::Padding);
                }
                let job_id =
                    std::str::from_utf8(&p[16..16 + jl]).map_err(|_| RecordError::JobIdUtf8)?;
                ShareData::Stratum {
                    job_id,
                    extranonce1: &p[48..48 + e1],
                    extranonce2: &p[64..64 + e2],
                    ntime: u32_at(p, 0),
                    nonce: u32_at(p, 4),
                    version_bits: (self.flags & FLAG_VERSION_BITS != 0).then(|| u32_at(p, 8)),
                    full_version: false,
                }
            }
            KIND_SV2_STANDARD | KIND_SV2_EXTENDED => self.check_sv2()?,
            KIND_HEADER => {
                let unknown = self.flags & !FLAG_TARGET;
                if unknown != 0 {
                    return Err(RecordError::UnknownFlags(unknown));
                }
                if self.job_id_len != 0 || self.extranonce1_len != 0 || self.extranonce2_len != 0 {
                    return Err(RecordError::HeaderWithJobFields);
                }
                let nbits = u32::from_le_bytes(self.payload[72..76].try_into().expect("4"));
                let network_target =
                    target_from_compact(nbits).map_err(|_| RecordError::HeaderNbits)?;
                ShareData::Header {
                    header: &self.payload,
                    network_target,
                }
            }
            k => return Err(RecordError::UnknownKind(k)),
        };
        Ok(ShareView { id, target, data })
    }
}

impl ShareRecord {
    /// The fields of an SV2 share (kinds 3 and 4): the version is always the full version,
    /// the extranonce (extended shares only) is packed from byte 48 of the payload.
    fn check_sv2(&self) -> Result<ShareData<'_>, RecordError> {
        let unknown = self.flags & !FLAG_TARGET;
        if unknown != 0 {
            return Err(RecordError::UnknownFlags(unknown));
        }
        let p = &self.payload;
        if u32_at(p, 12) != 0 {
            return Err(RecordError::Reserved);
        }
        let (jl, e1, e2) = (
            self.job_id_len as usize,
            self.extranonce1_len as usize,
            self.extranonce2_len as usize,
        );
        if jl == 0 || jl > MAX_JOB_ID {
            return Err(RecordError::JobIdLength(self.job_id_len));
        }
        let standard = self.kind == KIND_SV2_STANDARD;
        if standard && (e1 != 0 || e2 != 0) {
            return Err(RecordError::StandardWithExtranonce);
        }
        if e1 + e2 > MAX_SV2_EXTRANONCE {
            return Err(RecordError::Sv2ExtranonceLength((e1 + e2) as u8));
        }
        if p[16 + jl..48].iter().any(|&b| b != 0) || p[48 + e1 + e2..].iter().any(|&b| b != 0) {
            return Err(RecordError::Padding);
        }
        let job_id = std::str::from_utf8(&p[16..16 + jl]).map_err(|_| RecordError::JobIdUtf8)?;
        let (ntime, nonce, version) = (u32_at(p, 0), u32_at(p, 4), u32_at(p, 8));
        Ok(if standard {
            ShareData::Standard {
                job_id,
                ntime,
                nonce,
                version,
            }
        } else {
            ShareData::Stratum {
                job_id,
                extranonce1: &p[48..48 + e1],
                extranonce2: &p[48 + e1..48 + e1 + e2],
                ntime,
                nonce,
                version_bits: Some(version),
                full_version: true,
            }
        })
    }
}

/// How a share states its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShareTarget {
    Difficulty(f64),
    /// 32 bytes, big-endian.
    Target([u8; 32]),
}
