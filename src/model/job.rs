//! Jobs (mining.notify) and the per-job work done once per job, never per share.

use super::target::{target_from_compact, CompactError, U256};
use crate::sha256::{soft, State, IV};

/// Longest job id accepted (bytes), so that a share record can carry it inline.
pub const MAX_JOB_ID: usize = 32;
/// Longest extranonce1 accepted (bytes).
pub const MAX_EXTRANONCE1: usize = 16;
/// Longest extranonce2 accepted (bytes).
pub const MAX_EXTRANONCE2: usize = 16;
/// Longest coinb1 / coinb2 accepted (bytes each).
pub const MAX_COINB: usize = 16 * 1024;
/// Deepest merkle branch accepted (2^32 transactions would need 32 levels).
pub const MAX_BRANCH: usize = 32;
/// BIP310's default version-rolling mask.
pub const DEFAULT_VERSION_MASK: u32 = 0x1fff_e000;
/// The bits an SV2 miner may roll (BIP323's general-purpose bits, SRI's mask): BIP310's and
/// bits 5–12 beside them.
pub const SV2_VERSION_MASK: u32 = 0x1fff_ffe0;

/// A decoded mining job: the mining.notify parameters plus the session's version mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub job_id: String,
    /// Previous block hash in header byte order (stratum's word swapping already undone).
    pub prevhash: [u8; 32],
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    /// Merkle branch hashes in internal byte order, as stratum sends them.
    pub merkle_branch: Vec<[u8; 32]>,
    pub version: u32,
    pub nbits: u32,
    pub ntime: u32,
    pub clean_jobs: bool,
    pub version_mask: u32,
    /// Bytes of extranonce1 + extranonce2 the coinbase reserves between coinb1 and coinb2,
    /// when the job says (1–32): a stratum share of another length is `malformed`, since
    /// its coinbase would not be the transaction the job meant. None: any length.
    pub extranonce_size: Option<u8>,
    /// A Stratum V2 standard job (`NewMiningJob`): the header's merkle root, in header byte
    /// order. Its shares carry no extranonce and hash the 80-byte header built from the job
    /// and their own version, ntime and nonce; coinb1, coinb2 and the branch are then empty.
    /// Header shares are judged against such jobs (by prevhash, merkle root and nbits).
    pub merkle_root: Option<[u8; 32]>,
    /// Where the message stands in SV2's two-step announcement of a standard job; a plain
    /// job is [`JobStep::Live`]. See [`super::future::FutureJobs`].
    pub step: JobStep,
}

/// A job message in SV2's two steps: `NewMiningJob` with the future-job flag announces a
/// standard job before its block ([`JobStep::Future`]: no prevhash, nbits or ntime yet), and
/// `SetNewPrevHash` activates it ([`JobStep::Activation`]: only job_id, prevhash, nbits and
/// ntime = min_ntime). Every other job is live at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobStep {
    #[default]
    Live,
    Future,
    Activation,
}

/// Why a job cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("job_id must be 1 to {MAX_JOB_ID} bytes, got {0}")]
    JobId(usize),
    #[error("{0} is {1} bytes; at most {MAX_COINB} are supported")]
    Coinbase(&'static str, usize),
    #[error("merkle_branch has {0} entries; at most {MAX_BRANCH} are supported")]
    Branch(usize),
    #[error("nbits {0:08x} is not a valid compact target ({1:?})")]
    Nbits(u32, CompactError),
    #[error("nbits {0:08x} is a zero network target: no header can meet it")]
    ZeroTarget(u32),
    #[error("extranonce_size {0} is not 1 to 32 (extranonce1 and extranonce2 are 16 bytes each at most)")]
    ExtranonceSize(u8),
    #[error("a job with a merkle_root (a standard job) has no coinb1, coinb2, merkle_branch or extranonce_size")]
    StandardWithCoinbase,
    #[error("a future job must be a standard job (a merkle_root, no coinbase)")]
    FutureWithoutRoot,
    #[error("job {0:?} is activated (SetNewPrevHash) but no future job of that id is waiting")]
    NoFutureJob(String),
    #[error("a future job or an activation is not a job to mine on (it goes through FutureJobs)")]
    NotLive,
}

/// Swaps the bytes within each 4-byte word: stratum's prevhash ↔ header byte order.
pub fn swap_words(b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, i) in out.chunks_exact_mut(4).zip(b.chunks_exact(4)) {
        o.copy_from_slice(&[i[3], i[2], i[1], i[0]]);
    }
    out
}

/// Everything about a job that shares reuse, computed once when the job arrives.
#[derive(Debug, Clone)]
pub struct JobCtx {
    pub job: Job,
    /// SHA-256 state after coinb1's complete 64-byte blocks.
    pub coinb1_midstate: State,
    /// coinb1's bytes after its complete blocks (fewer than 64).
    pub coinb1_tail: Vec<u8>,
    /// Branch hashes as state words (a digest's bytes read big-endian), ready to hash.
    pub branch: Vec<State>,
    /// prevhash as header words 1..=8 (big-endian reads of the header bytes).
    pub prevhash_words: [u32; 8],
    /// Network target from nbits.
    pub network_target: U256,
    /// Per extranonce length: the coinbase tail blocks after the last one that holds
    /// extranonce bytes. They are the same for every share of the job, so they are built once.
    const_tail:
        [std::sync::OnceLock<Vec<crate::sha256::Block>>; MAX_EXTRANONCE1 + MAX_EXTRANONCE2 + 1],
}

impl JobCtx {
    pub fn new(job: Job) -> Result<JobCtx, JobError> {
        if job.step != JobStep::Live {
            return Err(JobError::NotLive);
        }
        if job.job_id.is_empty() || job.job_id.len() > MAX_JOB_ID {
            return Err(JobError::JobId(job.job_id.len()));
        }
        if job.coinb1.len() > MAX_COINB {
            return Err(JobError::Coinbase("coinb1", job.coinb1.len()));
        }
        if job.coinb2.len() > MAX_COINB {
            return Err(JobError::Coinbase("coinb2", job.coinb2.len()));
        }
        if job.merkle_branch.len() > MAX_BRANCH {
            return Err(JobError::Branch(job.merkle_branch.len()));
        }
        if let Some(n) = job.extranonce_size {
            if !(1..=(MAX_EXTRANONCE1 + MAX_EXTRANONCE2) as u8).contains(&n) {
                return Err(JobError::ExtranonceSize(n));
            }
        }
        if job.merkle_root.is_some()
            && (!job.coinb1.is_empty()
                || !job.coinb2.is_empty()
                || !job.merkle_branch.is_empty()
                || job.extranonce_size.is_some())
        {
            return Err(JobError::StandardWithCoinbase);
        }
        let network_target =
            target_from_compact(job.nbits).map_err(|e| JobError::Nbits(job.nbits, e))?;
        // A zero target (nbits 0, or a mantissa shifted out) would make every share's
        // check 7 meaningless; no network issues one.
        if network_target.is_zero() {
            return Err(JobError::ZeroTarget(job.nbits));
        }
        let full = job.coinb1.len() / 64 * 64;
        let mut mid = IV;
        for c in job.coinb1[..full].chunks_exact(64) {
            soft::compress(&mut mid, &soft::block_from_bytes(c));
        }
        let mut prevhash_words = [0u32; 8];
        for (w, c) in prevhash_words.iter_mut().zip(job.prevhash.chunks_exact(4)) {
            *w = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(JobCtx {
            coinb1_midstate: mid,
            coinb1_tail: job.coinb1[full..].to_vec(),
            branch: job
                .merkle_branch
                .iter()
                .map(soft::state_from_bytes)
                .collect(),
            prevhash_words,
            network_target,
            const_tail: std::array::from_fn(|_| std::sync::OnceLock::new()),
            job,
        })
    }

    /// Total coinbase length for a share with `en_len` extranonce bytes (en1 + en2).
    #[inline]
    pub fn coinbase_len(&self, en_len: usize) -> usize {
        self.job.coinb1.len() + en_len + self.job.coinb2.len()
    }

    /// Number of 64-byte blocks still to compress after the coinb1 midstate, padding included.
    #[inline]
    pub fn tail_blocks(&self, en_len: usize) -> usize {
        let tail = self.coinb1_tail.len() + en_len + self.job.coinb2.len();
        (tail + 9).div_ceil(64)
    }

    /// Block `index` of the coinbase tail (coinb1 tail ‖ extranonce ‖ coinb2 ‖ padding), where
    /// `en` is extranonce1 ‖ extranonce2. Copies at most 64 bytes; no allocation.
    pub fn tail_block(&self, en: &[u8], index: usize) -> crate::sha256::Block {
        let t1 = &self.coinb1_tail;
        let c2 = &self.job.coinb2;
        let data_len = t1.len() + en.len() + c2.len();
        let total_blocks = (data_len + 9).div_ceil(64);
        let mut buf = [0u8; 64];
        let start = index * 64;
        // Copy the overlap of [start, start + 64) with each segment.
        let mut seg_off = 0;
        for seg in [t1.as_slice(), en, c2.as_slice()] {
            let (s0, s1) = (seg_off, seg_off + seg.len());
            let lo = s0.max(start);
            let hi = s1.min(start + 64);
            if lo < hi {
                buf[lo - start..hi - start].copy_from_slice(&seg[lo - s0..hi - s0]);
            }
            seg_off = s1;
        }
        if (start..start + 64).contains(&data_len) {
            buf[data_len - start] = 0x80;
        }
        if index + 1 == total_blocks {
            let bits = (self.coinbase_len(en.len()) as u64) * 8;
            buf[56..].copy_from_slice(&bits.to_be_bytes());
        }
        soft::block_from_bytes(&buf)
    }

    /// Index of the first coinbase tail block that holds no extranonce byte.
    #[inline]
    pub fn first_const_block(&self, en_len: usize) -> usize {
        (self.coinb1_tail.len() + en_len).div_ceil(64)
    }

    /// Block `index` of the coinbase tail for a share whose extranonce is `en`: built from the
    /// share's bytes where it holds extranonce bytes, taken from the per-job cache otherwise.
    #[inline]
    pub fn coinbase_block(&self, en: &[u8], index: usize) -> crate::sha256::Block {
        let first = self.first_const_block(en.len());
        if index < first || en.len() >= self.const_tail.len() {
            return self.tail_block(en, index);
        }
        let blocks = self.const_tail[en.len()].get_or_init(|| {
            let zeros = [0u8; MAX_EXTRANONCE1 + MAX_EXTRANONCE2];
            let en0 = &zeros[..en.len()];
            (first..self.tail_blocks(en.len()))
                .map(|i| self.tail_block(en0, i))
                .collect()
        });
        blocks[index - first]
    }

    /// The final block version for a share: rolled bits from `version_bits` within the mask.
    #[inline]
    pub fn rolled_version(&self, version_bits: Option<u32>) -> u32 {
        match version_bits {
            None => self.job.version,
            Some(v) => (self.job.version & !self.job.version_mask) | (v & self.job.version_mask),
        }
    }

    /// The twenty header words for a share, given its merkle root state.
    #[inline]
    pub fn header_words(&self, version: u32, root: &State, ntime: u32, nonce: u32) -> [u32; 20] {
        let mut h = [0u32; 20];
        h[0] = version.swap_bytes();
        h[1..9].copy_from_slice(&self.prevhash_words);
        h[9..17].copy_from_slice(root);
        h[17] = ntime.swap_bytes();
        h[18] = self.job.nbits.swap_bytes();
        h[19] = nonce.swap_bytes();
        h
    }
}

impl JobCtx {
    /// The 80-byte header of a share on a standard job (one with a merkle root).
    pub fn standard_header(&self, version: u32, ntime: u32, nonce: u32) -> Option<[u8; 80]> {
        let root = self.job.merkle_root?;
        let mut h = [0u8; 80];
        h[..4].copy_from_slice(&version.to_le_bytes());
        h[4..36].copy_from_slice(&self.job.prevhash);
        h[36..68].copy_from_slice(&root);
        h[68..72].copy_from_slice(&ntime.to_le_bytes());
        h[72..76].copy_from_slice(&self.job.nbits.to_le_bytes());
        h[76..].copy_from_slice(&nonce.to_le_bytes());
        Some(h)
    }
}

/// The 80 header bytes from header words.
pub fn header_bytes(words: &[u32; 20]) -> [u8; 80] {
    let mut out = [0u8; 80];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// Header words from 80 header bytes.
pub fn header_words_from_bytes(bytes: &[u8; 80]) -> [u32; 20] {
    let mut w = [0u32; 20];
    for (o, c) in w.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(c1: usize, c2: usize) -> JobCtx {
        JobCtx::new(Job {
            job_id: "j".into(),
            prevhash: [7; 32],
            coinb1: (0..c1).map(|i| i as u8).collect(),
            coinb2: (0..c2).map(|i| (i * 3) as u8).collect(),
            merkle_branch: vec![],
            version: 0x2000_0000,
            nbits: 0x1d00ffff,
            ntime: 0,
            clean_jobs: false,
            version_mask: DEFAULT_VERSION_MASK,
            extranonce_size: None,
            merkle_root: None,
            step: Default::default(),
        })
        .unwrap()
    }

    #[test]
    fn tail_blocks_hash_like_the_whole_coinbase() {
        for c1 in [0, 1, 41, 63, 64, 65, 130] {
            for c2 in [0, 5, 46, 47, 55, 56, 100, 200] {
                for en in [0usize, 1, 8, 12, 32] {
                    let ctx = job(c1, c2);
                    let e: Vec<u8> = (0..en).map(|i| 0xa0 + i as u8).collect();
                    let mut s = ctx.coinb1_midstate;
                    for i in 0..ctx.tail_blocks(en) {
                        assert_eq!(ctx.coinbase_block(&e, i), ctx.tail_block(&e, i));
                        soft::compress(&mut s, &ctx.tail_block(&e, i));
                    }
                    let mut whole = ctx.job.coinb1.clone();
                    whole.extend(&e);
                    whole.extend(&ctx.job.coinb2);
                    assert_eq!(s, soft::sha256(&whole), "c1={c1} c2={c2} en={en}");
                }
            }
        }
    }

    #[test]
    fn a_zero_network_target_makes_a_job_unusable() {
        for nbits in [0, 0x0100_0000, 0x0200_00ff, 0x2000_0000] {
            let j = Job {
                nbits,
                ..job(0, 0).job
            };
            assert!(
                matches!(JobCtx::new(j), Err(JobError::ZeroTarget(n)) if n == nbits),
                "{nbits:08x}"
            );
        }
        let j = Job {
            nbits: 0x0101_0000,
            ..job(0, 0).job
        };
        assert!(
            JobCtx::new(j).is_ok(),
            "the smallest non-zero target is usable"
        );
    }

    #[test]
    fn version_rolling() {
        let ctx = job(10, 10);
        assert_eq!(ctx.rolled_version(None), 0x2000_0000);
        assert_eq!(ctx.rolled_version(Some(0x1fffe000)), 0x3fffe000);
        assert_eq!(ctx.rolled_version(Some(0x00002000)), 0x2000_2000);
    }
}
