//! Job messages (`sharecheck_job` in, record kind 3 out).

use crate::{
    bytes, guard, write_message, SHARECHECK_ERR_BRANCH_LENGTH, SHARECHECK_ERR_COINBASE_LENGTH,
    SHARECHECK_ERR_JOB_ID_LENGTH, SHARECHECK_ERR_JOB_ID_UTF8, SHARECHECK_ERR_NBITS,
    SHARECHECK_ERR_NULL,
};
use sharecheck::model::job::{swap_words, JobError, JobStep, MAX_BRANCH, MAX_COINB, MAX_JOB_ID};
use sharecheck::model::JobCtx;
use sharecheck::wire::binary::encode_job;
use std::ffi::{c_char, c_int};

/// The largest job message: batch header, the 88-byte fixed part, two full coinbase halves
/// and a full branch (`SHARECHECK_JOB_MAX_SIZE`).
pub const JOB_MAX_SIZE: usize = 16 + 88 + 2 * MAX_COINB + 32 * MAX_BRANCH;

/// A job's fields, as mining.notify sends them but in binary (`sharecheck_job` in C).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub job_id: *const c_char,
    pub job_id_len: usize,
    /// Previous block hash in header byte order (`sharecheck_prevhash_from_stratum` converts
    /// stratum's word-swapped form).
    pub prevhash: [u8; 32],
    pub coinb1: *const u8,
    pub coinb1_len: usize,
    pub coinb2: *const u8,
    pub coinb2_len: usize,
    /// `merkle_count` hashes of 32 bytes each, back to back, in internal byte order.
    pub merkle_branch: *const u8,
    pub merkle_count: usize,
    pub version: u32,
    pub nbits: u32,
    pub ntime: u32,
    pub version_mask: u32,
    /// Non-zero: every earlier job is stale.
    pub clean_jobs: u8,
    /// Bytes of extranonce1 + extranonce2 the coinbase reserves (1–32); 0: not stated.
    pub extranonce_size: u8,
}

fn job_error(e: JobError) -> c_int {
    match e {
        JobError::JobId(_) => SHARECHECK_ERR_JOB_ID_LENGTH,
        JobError::Coinbase(..) => SHARECHECK_ERR_COINBASE_LENGTH,
        JobError::Branch(_) => SHARECHECK_ERR_BRANCH_LENGTH,
        JobError::Nbits(..) | JobError::ZeroTarget(_) => SHARECHECK_ERR_NBITS,
        JobError::ExtranonceSize(_) => crate::SHARECHECK_ERR_TOO_LARGE,
        // Each C struct is one kind of job, so neither states both.
        JobError::StandardWithCoinbase => crate::SHARECHECK_ERR_INTERNAL,
        // The C structs make live jobs only.
        JobError::FutureWithoutRoot | JobError::NoFutureJob(_) | JobError::NotLive => {
            crate::SHARECHECK_ERR_INTERNAL
        }
    }
}

/// The job as the main crate holds it, every length checked before its bytes are read.
unsafe fn to_job(j: &Job) -> Result<sharecheck::model::Job, c_int> {
    if j.job_id_len == 0 || j.job_id_len > MAX_JOB_ID {
        return Err(SHARECHECK_ERR_JOB_ID_LENGTH);
    }
    if j.coinb1_len > MAX_COINB || j.coinb2_len > MAX_COINB {
        return Err(SHARECHECK_ERR_COINBASE_LENGTH);
    }
    if j.merkle_count > MAX_BRANCH {
        return Err(SHARECHECK_ERR_BRANCH_LENGTH);
    }
    let job_id = std::str::from_utf8(bytes(j.job_id.cast(), j.job_id_len)?)
        .map_err(|_| SHARECHECK_ERR_JOB_ID_UTF8)?;
    let branch = bytes(j.merkle_branch, 32 * j.merkle_count)?;
    Ok(sharecheck::model::Job {
        job_id: job_id.to_string(),
        prevhash: j.prevhash,
        coinb1: bytes(j.coinb1, j.coinb1_len)?.to_vec(),
        coinb2: bytes(j.coinb2, j.coinb2_len)?.to_vec(),
        merkle_branch: branch
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32-byte chunks"))
            .collect(),
        version: j.version,
        nbits: j.nbits,
        ntime: j.ntime,
        clean_jobs: j.clean_jobs != 0,
        version_mask: j.version_mask,
        extranonce_size: (j.extranonce_size != 0).then_some(j.extranonce_size),
        merkle_root: None,
        step: Default::default(),
    })
}

/// Writes the job message of `*job` to `out`; `*out_len` gets its size, also when `out_cap`
/// is too small (`SHARECHECK_ERR_BUFFER_TOO_SMALL`). A job the validator would refuse (bad
/// lengths, an nbits that is no valid non-zero target) is refused here.
///
/// # Safety
/// `job` must point to a `sharecheck_job` whose pointers each point to their length in
/// readable bytes (or are NULL with length 0); `out` must point to `out_cap` writable bytes
/// and `out_len` must be writable.
#[no_mangle]
pub unsafe extern "C" fn sharecheck_encode_job(
    job: *const Job,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int {
    guard(|| {
        if job.is_null() || out_len.is_null() {
            return Err(SHARECHECK_ERR_NULL);
        }
        write_job(to_job(&*job)?, out, out_cap, out_len)
    })
}

/// The job message of a standard job: batch header and the 88-byte fixed part with the
/// merkle root (`SHARECHECK_STANDARD_JOB_SIZE`).
pub const STANDARD_JOB_SIZE: usize = 16 + 88 + 32;

/// An SV2 standard job (`sharecheck_standard_job` in C): `NewMiningJob`'s job id (its
/// decimal), merkle root and version, with the prev hash, nbits and min_ntime of the
/// `SetNewPrevHash` that activates it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StandardJob {
    pub job_id: *const c_char,
    pub job_id_len: usize,
    /// Previous block hash in header byte order.
    pub prevhash: [u8; 32],
    /// The header's merkle root, in header byte order.
    pub merkle_root: [u8; 32],
    pub version: u32,
    pub nbits: u32,
    /// SetNewPrevHash's min_ntime.
    pub min_ntime: u32,
    /// The version bits a share may change (0: none).
    pub version_mask: u32,
    /// Non-zero: every earlier job of another prevhash is stale (the job a new prev hash
    /// activates).
    pub clean_jobs: u8,
    /// Non-zero: a future job (`NewMiningJob` without min_ntime), live once
    /// [`sharecheck_encode_activation`]'s message for its id follows; prevhash, nbits and
    /// min_ntime are then not read.
    pub future: u8,
}

/// The job message of an activation: batch header and the 88-byte fixed part
/// (`SHARECHECK_ACTIVATION_SIZE`).
pub const ACTIVATION_SIZE: usize = 16 + 88;

/// Writes the job message of `*job` to `out` (`STANDARD_JOB_SIZE` bytes); `*out_len` gets its
/// size, also when `out_cap` is too small (`SHARECHECK_ERR_BUFFER_TOO_SMALL`). A job the
/// validator would refuse is refused here.
///
/// # Safety
/// `job` must point to a `sharecheck_standard_job` whose `job_id` points to `job_id_len`
/// readable bytes; `out` must point to `out_cap` writable bytes and `out_len` must be writable.
#[no_mangle]
pub unsafe extern "C" fn sharecheck_encode_standard_job(
    job: *const StandardJob,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int {
    guard(|| {
        if job.is_null() || out_len.is_null() {
            return Err(SHARECHECK_ERR_NULL);
        }
        let j = &*job;
        let job_id = crate::job_id(j.job_id, j.job_id_len)?;
        let job = standard_job(job_id, j.prevhash, j.nbits, j.min_ntime, j.merkle_root);
        let job = sharecheck::model::Job {
            version: j.version,
            clean_jobs: j.clean_jobs != 0,
            version_mask: j.version_mask,
            ..job
        };
        if j.future == 0 {
            return write_job(job, out, out_cap, out_len);
        }
        // The activation brings prevhash, nbits and ntime.
        let job = sharecheck::model::Job {
            prevhash: [0; 32],
            nbits: 0,
            ntime: 0,
            step: JobStep::Future,
            ..job
        };
        write_message(&encode_job(&job), out, out_cap, out_len)
    })
}

/// A live standard job of these fields (version 0, no version rolling, not clean).
fn standard_job(
    job_id: &str,
    prevhash: [u8; 32],
    nbits: u32,
    ntime: u32,
    merkle_root: [u8; 32],
) -> sharecheck::model::Job {
    sharecheck::model::Job {
        job_id: job_id.to_string(),
        prevhash,
        coinb1: Vec::new(),
        coinb2: Vec::new(),
        merkle_branch: Vec::new(),
        version: 0,
        nbits,
        ntime,
        clean_jobs: false,
        version_mask: 0,
        extranonce_size: None,
        merkle_root: Some(merkle_root),
        step: JobStep::Live,
    }
}

/// Writes the job message that activates the future job `job_id` (SV2 `SetNewPrevHash`:
/// the prev hash in header byte order, nbits and min_ntime) to `out` (`ACTIVATION_SIZE`
/// bytes); `*out_len` gets its size, also when `out_cap` is too small
/// (`SHARECHECK_ERR_BUFFER_TOO_SMALL`). An nbits that is no valid non-zero target is refused.
///
/// # Safety
/// `job_id` must point to `job_id_len` readable bytes, `prevhash` to 32 readable bytes; `out`
/// must point to `out_cap` writable bytes and `out_len` must be writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sharecheck_encode_activation(
    job_id: *const c_char,
    job_id_len: usize,
    prevhash: *const u8,
    nbits: u32,
    min_ntime: u32,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int {
    guard(|| {
        if prevhash.is_null() || out_len.is_null() {
            return Err(SHARECHECK_ERR_NULL);
        }
        let job_id = crate::job_id(job_id, job_id_len)?;
        let prevhash: [u8; 32] = prevhash.cast::<[u8; 32]>().read_unaligned();
        // The job it makes must be one a validator takes: nbits checked as for any job.
        let live = standard_job(job_id, prevhash, nbits, min_ntime, [0; 32]);
        JobCtx::new(live.clone()).map_err(job_error)?;
        let activation = sharecheck::model::Job {
            merkle_root: None,
            clean_jobs: true,
            step: JobStep::Activation,
            ..live
        };
        write_message(&encode_job(&activation), out, out_cap, out_len)
    })
}

/// Writes a job's message once it passes the checks a validator node makes when the job
/// arrives.
///
/// # Safety
/// As for [`write_message`].
unsafe fn write_job(
    job: sharecheck::model::Job,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> Result<(), c_int> {
    let msg = encode_job(&job);
    JobCtx::new(job).map_err(job_error)?;
    write_message(&msg, out, out_cap, out_len)
}

/// Converts a prevhash from stratum's form (each 4-byte word byte-swapped, as mining.notify
/// sends it once its hex is decoded) to header byte order. `stratum` and `header_order` may be
/// the same buffer.
///
/// # Safety
/// `stratum` must point to 32 readable bytes and `header_order` to 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn sharecheck_prevhash_from_stratum(
    stratum: *const u8,
    header_order: *mut u8,
) -> c_int {
    guard(|| {
        if stratum.is_null() || header_order.is_null() {
            return Err(SHARECHECK_ERR_NULL);
        }
        let s: [u8; 32] = stratum.cast::<[u8; 32]>().read_unaligned();
        header_order
            .cast::<[u8; 32]>()
            .write_unaligned(swap_words(&s));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SHARECHECK_ERR_BUFFER_TOO_SMALL, SHARECHECK_OK};

    fn job<'a>(id: &'a [u8], c1: &'a [u8], branch: &'a [u8]) -> Job {
        Job {
            job_id: id.as_ptr().cast(),
            job_id_len: id.len(),
            prevhash: [3; 32],
            coinb1: c1.as_ptr(),
            coinb1_len: c1.len(),
            coinb2: std::ptr::null(),
            coinb2_len: 0,
            merkle_branch: branch.as_ptr(),
            merkle_count: branch.len() / 32,
            version: 0x2000_0000,
            nbits: 0x1d00ffff,
            ntime: 0x66a0e2b1,
            version_mask: 0x1fffe000,
            clean_jobs: 1,
            extranonce_size: 8,
        }
    }

    fn encode(j: &Job) -> Result<Vec<u8>, c_int> {
        let mut len = 0;
        let rc = unsafe { sharecheck_encode_job(j, std::ptr::null_mut(), 0, &mut len) };
        if rc != SHARECHECK_ERR_BUFFER_TOO_SMALL {
            return Err(rc);
        }
        let mut buf = vec![0u8; len];
        let rc = unsafe { sharecheck_encode_job(j, buf.as_mut_ptr(), len, &mut len) };
        if rc != SHARECHECK_OK {
            return Err(rc);
        }
        Ok(buf)
    }

    #[test]
    fn a_job_decodes_to_its_fields() {
        let branch = [[5u8; 32], [6u8; 32]].concat();
        let msg = encode(&job(b"6b", b"coinb1", &branch)).unwrap();
        let got = sharecheck::wire::binary::decode_job(&msg).unwrap();
        assert_eq!(got.job_id, "6b");
        assert_eq!(got.prevhash, [3; 32]);
        assert_eq!(got.coinb1, b"coinb1");
        assert!(got.coinb2.is_empty());
        assert_eq!(got.merkle_branch, vec![[5u8; 32], [6u8; 32]]);
        assert_eq!(got.extranonce_size, Some(8));
        assert_eq!(
            (
                got.version,
                got.nbits,
                got.ntime,
                got.version_mask,
                got.clean_jobs
            ),
            (0x2000_0000, 0x1d00ffff, 0x66a0e2b1, 0x1fffe000, true)
        );
    }

    #[test]
    fn jobs_the_validator_refuses_are_refused() {
        let long = [b'j'; 33];
        assert_eq!(
            encode(&job(&long, b"", &[])),
            Err(SHARECHECK_ERR_JOB_ID_LENGTH)
        );
        assert_eq!(
            encode(&job(b"\xc3", b"", &[])),
            Err(SHARECHECK_ERR_JOB_ID_UTF8)
        );
        let big = vec![0u8; MAX_COINB + 1];
        assert_eq!(
            encode(&job(b"j", &big, &[])),
            Err(SHARECHECK_ERR_COINBASE_LENGTH)
        );
        let deep = vec![0u8; 32 * (MAX_BRANCH + 1)];
        assert_eq!(
            encode(&job(b"j", b"", &deep)),
            Err(SHARECHECK_ERR_BRANCH_LENGTH)
        );
        for nbits in [0, 0x1d80ffff, 0x2300ffff] {
            let j = Job {
                nbits,
                ..job(b"j", b"", &[])
            };
            assert_eq!(encode(&j), Err(SHARECHECK_ERR_NBITS), "{nbits:08x}");
        }
        let full = vec![0u8; MAX_COINB];
        let deepest = vec![0u8; 32 * MAX_BRANCH];
        let j = Job {
            coinb2: full.as_ptr(),
            coinb2_len: full.len(),
            ..job(&[b'j'; 32], &full, &deepest)
        };
        assert_eq!(encode(&j).unwrap().len(), JOB_MAX_SIZE);
    }

    #[test]
    fn a_standard_job_decodes_to_its_fields() {
        let j = StandardJob {
            job_id: b"17".as_ptr().cast(),
            job_id_len: 2,
            prevhash: [3; 32],
            merkle_root: [9; 32],
            version: 0x2000_0000,
            nbits: 0x1703a30c,
            min_ntime: 0x66a0e2b1,
            version_mask: 0x1fff_ffe0,
            clean_jobs: 1,
            future: 0,
        };
        let mut buf = [0u8; STANDARD_JOB_SIZE];
        let mut len = 0;
        let rc = unsafe { sharecheck_encode_standard_job(&j, buf.as_mut_ptr(), 10, &mut len) };
        assert_eq!(
            (rc, len),
            (SHARECHECK_ERR_BUFFER_TOO_SMALL, STANDARD_JOB_SIZE)
        );
        let rc = unsafe { sharecheck_encode_standard_job(&j, buf.as_mut_ptr(), len, &mut len) };
        assert_eq!(rc, SHARECHECK_OK);
        let got = sharecheck::wire::binary::decode_job(&buf).unwrap();
        assert_eq!(got.merkle_root, Some([9; 32]));
        assert_eq!(got.job_id, "17");
        assert_eq!(
            (
                got.version,
                got.nbits,
                got.ntime,
                got.version_mask,
                got.clean_jobs
            ),
            (0x2000_0000, 0x1703a30c, 0x66a0e2b1, 0x1fff_ffe0, true)
        );
        assert!(got.coinb1.is_empty() && got.merkle_branch.is_empty());
        let zero = StandardJob { nbits: 0, ..j };
        let rc = unsafe { sharecheck_encode_standard_job(&zero, buf.as_mut_ptr(), len, &mut len) };
        assert_eq!(rc, SHARECHECK_ERR_NBITS);

        // As a future job, then activated: the live job of the same fields.
        let future = StandardJob { future: 1, ..zero };
        let rc =
            unsafe { sharecheck_encode_standard_job(&future, buf.as_mut_ptr(), len, &mut len) };
        assert_eq!(rc, SHARECHECK_OK);
        let f = sharecheck::wire::binary::decode_job(&buf).unwrap();
        assert_eq!((f.step, f.nbits, f.prevhash), (JobStep::Future, 0, [0; 32]));
        let mut act = [0u8; ACTIVATION_SIZE];
        let rc = unsafe {
            sharecheck_encode_activation(
                b"17".as_ptr().cast(),
                2,
                [3u8; 32].as_ptr(),
                0x1703a30c,
                0x66a0e2b1,
                act.as_mut_ptr(),
                act.len(),
                &mut len,
            )
        };
        assert_eq!((rc, len), (SHARECHECK_OK, ACTIVATION_SIZE));
        let a = sharecheck::wire::binary::decode_job(&act).unwrap();
        assert_eq!(a.step, JobStep::Activation);
        let mut waiting = sharecheck::model::future::FutureJobs::new(4);
        assert_eq!(waiting.resolve(f), Ok(None));
        let live = waiting.resolve(a).unwrap().unwrap();
        let mut want = sharecheck::wire::binary::decode_job(&buf_live(&j)).unwrap();
        want.clean_jobs = true;
        assert_eq!(live, want);
        let rc = unsafe {
            sharecheck_encode_activation(
                b"17".as_ptr().cast(),
                2,
                [3u8; 32].as_ptr(),
                0,
                0,
                act.as_mut_ptr(),
                act.len(),
                &mut len,
            )
        };
        assert_eq!(rc, SHARECHECK_ERR_NBITS);
    }

    fn buf_live(j: &StandardJob) -> Vec<u8> {
        let mut buf = vec![0u8; STANDARD_JOB_SIZE];
        let mut len = 0;
        let rc =
            unsafe { sharecheck_encode_standard_job(j, buf.as_mut_ptr(), buf.len(), &mut len) };
        assert_eq!(rc, SHARECHECK_OK);
        buf
    }

    #[test]
    fn prevhash_words_are_swapped_in_place() {
        let mut b: [u8; 32] = std::array::from_fn(|i| i as u8);
        let p = b.as_mut_ptr();
        assert_eq!(
            unsafe { sharecheck_prevhash_from_stratum(p, p) },
            SHARECHECK_OK
        );
        assert_eq!(&b[..8], &[3, 2, 1, 0, 7, 6, 5, 4]);
    }
}
