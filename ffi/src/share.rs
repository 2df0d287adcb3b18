//! Share records (`sharecheck_share`, 128 bytes) and share batches.

use crate::{
    bytes, guard, write_message, SHARECHECK_ERR_BUFFER_TOO_SMALL, SHARECHECK_ERR_DIFFICULTY,
    SHARECHECK_ERR_EXTRANONCE1_LENGTH, SHARECHECK_ERR_EXTRANONCE2_LENGTH,
    SHARECHECK_ERR_HEADER_NBITS, SHARECHECK_ERR_INTERNAL, SHARECHECK_ERR_JOB_ID_LENGTH,
    SHARECHECK_ERR_JOB_ID_UTF8, SHARECHECK_ERR_NULL, SHARECHECK_ERR_SV2_EXTRANONCE_LENGTH,
    SHARECHECK_ERR_TOO_LARGE, SHARECHECK_ERR_ZERO_TARGET,
};
use sharecheck::kafka::send::key_of;
use sharecheck::model::job::{MAX_EXTRANONCE1, MAX_EXTRANONCE2, MAX_JOB_ID};
use sharecheck::model::share::MAX_SV2_EXTRANONCE;
use sharecheck::model::RecordError;
use sharecheck::wire::binary::{encode_shares, ShareRecord, ShareTarget};
use std::ffi::{c_char, c_int};

/// Batch header size in front of the records.
const BATCH_HEADER: usize = 16;

/// The code for a record that `ShareRecord::check` refuses. The builders check every field
/// first, so this is reached only for what they cannot see alone (a header's nbits).
fn record_error(e: RecordError) -> c_int {
    match e {
        RecordError::JobIdLength(_) => SHARECHECK_ERR_JOB_ID_LENGTH,
        RecordError::JobIdUtf8 => SHARECHECK_ERR_JOB_ID_UTF8,
        RecordError::Extranonce1Length(_) => SHARECHECK_ERR_EXTRANONCE1_LENGTH,
        RecordError::Extranonce2Length(_) => SHARECHECK_ERR_EXTRANONCE2_LENGTH,
        RecordError::Difficulty => SHARECHECK_ERR_DIFFICULTY,
        RecordError::ZeroTarget => SHARECHECK_ERR_ZERO_TARGET,
        RecordError::HeaderNbits => SHARECHECK_ERR_HEADER_NBITS,
        RecordError::Sv2ExtranonceLength(_) => SHARECHECK_ERR_SV2_EXTRANONCE_LENGTH,
        _ => SHARECHECK_ERR_INTERNAL,
    }
}

/// Stores `rec` in `*out` once the record check of the validator accepts it, so a record made
/// here never gets a `malformed` verdict.
unsafe fn finish(rec: ShareRecord, out: *mut ShareRecord) -> Result<(), c_int> {
    rec.check().map_err(record_error)?;
    out.write(rec);
    Ok(())
}

/// A share target given as 32 big-endian bytes (not zero), or, when `target` is NULL, as a
/// difficulty.
///
/// # Safety
/// `target` must be NULL or point to 32 readable bytes.
unsafe fn share_target(d: f64, target: *const u8) -> Result<ShareTarget, c_int> {
    if target.is_null() {
        return difficulty(d);
    }
    let t: [u8; 32] = target.cast::<[u8; 32]>().read_unaligned();
    if t == [0; 32] {
        return Err(SHARECHECK_ERR_ZERO_TARGET);
    }
    Ok(ShareTarget::Target(t))
}

fn difficulty(d: f64) -> Result<ShareTarget, c_int> {
    if d.is_finite() && d > 0.0 {
        Ok(ShareTarget::Difficulty(d))
    } else {
        Err(SHARECHECK_ERR_DIFFICULTY)
    }
}

/// Fills `*out` with a stratum share (mining.submit plus the session's extranonce1 and
/// difficulty). `has_version_bits` non-zero: `version_bits` is the BIP310 rolled bits.
///
/// # Safety
/// `out` must point to 128 writable bytes; each pointer with a non-zero length must point to
/// that many readable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sharecheck_share_stratum(
    out: *mut ShareRecord,
    id: u64,
    job_id: *const c_char,
    job_id_len: usize,
    extranonce1: *const u8,
    extranonce1_len: usize,
    extranonce2: *const u8,
    extranonce2_len: usize,
    ntime: u32,
    nonce: u32,
    has_version_bits: c_int,
    version_bits: u32,
    difficulty_: f64,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(SHARECHECK_ERR_NULL);
        }
        // Lengths first: ShareRecord::stratum panics on lengths above the record's fields.
        if job_id_len == 0 || job_id_len > MAX_JOB_ID {
            return Err(SHARECHECK_ERR_JOB_ID_LENGTH);
        }
        if extranonce1_len > MAX_EXTRANONCE1 {
            return Err(SHARECHECK_ERR_EXTRANONCE1_LENGTH);
        }
        if extranonce2_len == 0 || extranonce2_len > MAX_EXTRANONCE2 {
            return Err(SHARECHECK_ERR_EXTRANONCE2_LENGTH);
        }
        let target = difficulty(difficulty_)?;
        let job_id = std::str::from_utf8(bytes(job_id.cast(), job_id_len)?)
            .map_err(|_| SHARECHECK_ERR_JOB_ID_UTF8)?;
        let rec = ShareRecord::stratum(
            id,
            job_id,
            bytes(extranonce1, extranonce1_len)?,
            bytes(extranonce2, extranonce2_len)?,
            ntime,
            nonce,
            (has_version_bits != 0).then_some(version_bits),
            target,
        );
        finish(rec, out)
    })
}

/// Fills `*out` with a header share: the 80 header bytes as hashed, and the share target as
/// `target` (32 big-endian bytes, not zero) or, when `target` is NULL, as `difficulty`.
///
/// # Safety
/// `out` must point to 128 writable bytes, `header` to 80 readable bytes, and `target` must be
/// NULL or point to 32 readable bytes.
#[no_mangle]
pub unsafe extern "C" fn sharecheck_share_header(
    out: *mut ShareRecord,
    id: u64,
    header: *const u8,
    difficulty_: f64,
    target: *const u8,
) -> c_int {
    guard(|| {
        if out.is_null() || header.is_null() {
            return Err(SHARECHECK_ERR_NULL);
        }
        let header: [u8; 80] = header.cast::<[u8; 80]>().read_unaligned();
        let target = share_target(difficulty_, target)?;
        finish(ShareRecord::header(id, &header, target), out)
    })
}

/// The Kafka key of a share message holding `*share`, the bytes the node's own producers use
/// (`sharecheck::kafka::send::key_of`; duplicates are tracked per partition, so every copy of
/// one proof of work must get the same key): a stratum share's extranonce1 (its session), an
/// SV2 extended share's extranonce_prefix (its channel), a header share's and an SV2 standard
/// share's nonce low byte (the one field both carry, so that a header share and a standard
/// share of the same work meet). `*key` points into `*share` and is valid as long as it is;
/// a stratum share with an empty extranonce1 has an empty key.
///
/// # Safety
/// `share` must point to a 128-byte record; `key` and `key_len` must be writable.
#[no_mangle]
pub unsafe extern "C" fn sharecheck_share_key(
    share: *const ShareRecord,
    key: *mut *const u8,
    key_len: *mut usize,
) -> c_int {
    guard(|| {
        if share.is_null() || key.is_null() || key_len.is_null() {
            return Err(SHARECHECK_ERR_NULL);
        }
        let k = key_of(&*share);
        *key = k.as_ptr();
        *key_len = k.len();
        Ok(())
    })
}

/// Fills `*out` with an SV2 standard share (`SubmitSharesStandard`: job_id written as its
/// decimal, the full block version, ntime, nonce) and the channel's target, as `target` (32
/// big-endian bytes, as `SetTarget` carries it once byte-reversed) or, when `target` is NULL,
/// as `difficulty`. channel_id and sequence_number are the front end's to keep.
///
/// # Safety
/// `out` must point to 128 writable bytes, `job_id` to `job_id_len` readable bytes, and
/// `target` must be NULL or point to 32 readable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sharecheck_share_sv2_standard(
    out: *mut ShareRecord,
    id: u64,
    job_id: *const c_char,
    job_id_len: usize,
    version: u32,
    ntime: u32,
    nonce: u32,
    difficulty_: f64,
    target: *const u8,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(SHARECHECK_ERR_NULL);
        }
        let job_id = crate::job_id(job_id, job_id_len)?;
        let target = share_target(difficulty_, target)?;
        let rec = ShareRecord::sv2_standard(id, job_id, ntime, nonce, version, target);
        finish(rec, out)
    })
}

/// Fills `*out` with an SV2 extended share (`SubmitSharesExtended`): the channel's
/// extranonce_prefix and the share's extranonce (at most 32 bytes together), the full
/// version, ntime and nonce, and the channel's target as for
/// [`sharecheck_share_sv2_standard`].
///
/// # Safety
/// As for [`sharecheck_share_sv2_standard`]; each pointer with a non-zero length must point to
/// that many readable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sharecheck_share_sv2_extended(
    out: *mut ShareRecord,
    id: u64,
    job_id: *const c_char,
    job_id_len: usize,
    extranonce_prefix: *const u8,
    extranonce_prefix_len: usize,
    extranonce: *const u8,
    extranonce_len: usize,
    version: u32,
    ntime: u32,
    nonce: u32,
    difficulty_: f64,
    target: *const u8,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(SHARECHECK_ERR_NULL);
        }
        let job_id = crate::job_id(job_id, job_id_len)?;
        // Before the record is built: ShareRecord::sv2_extended panics on longer ones.
        if extranonce_prefix_len.saturating_add(extranonce_len) > MAX_SV2_EXTRANONCE {
            return Err(SHARECHECK_ERR_SV2_EXTRANONCE_LENGTH);
        }
        let target = share_target(difficulty_, target)?;
        let rec = ShareRecord::sv2_extended(
            id,
            job_id,
            bytes(extranonce_prefix, extranonce_prefix_len)?,
            bytes(extranonce, extranonce_len)?,
            ntime,
            nonce,
            version,
            target,
        );
        finish(rec, out)
    })
}

/// Writes a share batch of `count` records (16-byte batch header, then the records) to `out`.
/// `*out_len` gets the batch's size, `16 + 128 * count`, also when `out_cap` is too small
/// (`SHARECHECK_ERR_BUFFER_TOO_SMALL`; `out` may then be NULL).
///
/// # Safety
/// `records` must point to `count` records (or be NULL with `count` 0), `out` to `out_cap`
/// writable bytes, `out_len` must be writable.
#[no_mangle]
pub unsafe extern "C" fn sharecheck_encode_shares(
    records: *const ShareRecord,
    count: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int {
    guard(|| {
        if out_len.is_null() || (records.is_null() && count > 0) {
            return Err(SHARECHECK_ERR_NULL);
        }
        // The batch header counts records in a u32.
        if u32::try_from(count).is_err() || count > (isize::MAX as usize - BATCH_HEADER) / 128 {
            return Err(SHARECHECK_ERR_TOO_LARGE);
        }
        // Checked before encoding, so that asking for the size costs no batch.
        let needed = BATCH_HEADER + 128 * count;
        if out_cap < needed {
            *out_len = needed;
            return Err(SHARECHECK_ERR_BUFFER_TOO_SMALL);
        }
        let records: &[ShareRecord] = if count == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(records, count)
        };
        write_message(&encode_shares(records), out, out_cap, out_len)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SHARECHECK_OK;
    use std::mem::MaybeUninit;

    /// An all-zero record (ShareRecord is plain bytes).
    fn blank() -> ShareRecord {
        unsafe { std::mem::zeroed() }
    }

    unsafe fn stratum(job_id: &[u8], en1: &[u8], en2: &[u8], d: f64) -> Result<ShareRecord, c_int> {
        let mut out = MaybeUninit::<ShareRecord>::uninit();
        let rc = sharecheck_share_stratum(
            out.as_mut_ptr(),
            7,
            job_id.as_ptr().cast(),
            job_id.len(),
            en1.as_ptr(),
            en1.len(),
            en2.as_ptr(),
            en2.len(),
            0x495fab29,
            0x7c2bac1d,
            1,
            0x2000,
            d,
        );
        if rc == SHARECHECK_OK {
            Ok(out.assume_init())
        } else {
            Err(rc)
        }
    }

    #[test]
    fn a_stratum_share_is_the_main_crates_record() {
        let got = unsafe { stratum(b"6a", b"ETHe", b" Tim", 1.0) }.unwrap();
        let want = ShareRecord::stratum(
            7,
            "6a",
            b"ETHe",
            b" Tim",
            0x495fab29,
            0x7c2bac1d,
            Some(0x2000),
            ShareTarget::Difficulty(1.0),
        );
        assert_eq!(got, want);
    }

    /// job_id, extranonce1, extranonce2, difficulty, and the code they get.
    type Case<'a> = (&'a [u8], &'a [u8], &'a [u8], f64, c_int);

    #[test]
    fn bad_fields_are_refused_before_any_record_is_made() {
        let cases: [Case; 9] = [
            (b"", b"", b"e", 1.0, SHARECHECK_ERR_JOB_ID_LENGTH),
            (&[b'j'; 33], b"", b"e", 1.0, SHARECHECK_ERR_JOB_ID_LENGTH),
            (b"\xff", b"", b"e", 1.0, SHARECHECK_ERR_JOB_ID_UTF8),
            (b"j", &[1; 17], b"e", 1.0, SHARECHECK_ERR_EXTRANONCE1_LENGTH),
            (b"j", b"", b"", 1.0, SHARECHECK_ERR_EXTRANONCE2_LENGTH),
            (b"j", b"", &[1; 17], 1.0, SHARECHECK_ERR_EXTRANONCE2_LENGTH),
            (b"j", b"", b"e", f64::NAN, SHARECHECK_ERR_DIFFICULTY),
            (b"j", b"", b"e", f64::INFINITY, SHARECHECK_ERR_DIFFICULTY),
            (b"j", b"", b"e", -1.0, SHARECHECK_ERR_DIFFICULTY),
        ];
        for (j, e1, e2, d, want) in cases {
            assert_eq!(
                unsafe { stratum(j, e1, e2, d) },
                Err(want),
                "{j:?} {e1:?} {e2:?} {d}"
            );
        }
        assert!(unsafe { stratum(&[b'j'; 32], &[1; 16], &[1; 16], 1e-300) }.is_ok());
    }

    #[test]
    fn a_header_share_checks_its_target_and_nbits() {
        let mut header = [0u8; 80];
        header[72..76].copy_from_slice(&0x1d00ffffu32.to_le_bytes());
        let mut out = MaybeUninit::<ShareRecord>::uninit();
        let p = out.as_mut_ptr();
        let h = header.as_ptr();
        unsafe {
            assert_eq!(sharecheck_share_header(p, 1, h, 1.0, std::ptr::null()), 0);
            let t = [0u8; 32];
            let rc = sharecheck_share_header(p, 1, h, 1.0, t.as_ptr());
            assert_eq!(rc, SHARECHECK_ERR_ZERO_TARGET);
            let rc = sharecheck_share_header(p, 1, h, 0.0, std::ptr::null());
            assert_eq!(rc, SHARECHECK_ERR_DIFFICULTY);
            header[75] = 0x80; // a negative compact target
            let rc = sharecheck_share_header(p, 1, header.as_ptr(), 1.0, std::ptr::null());
            assert_eq!(rc, SHARECHECK_ERR_HEADER_NBITS);
        }
    }

    #[test]
    fn keys_are_those_of_the_nodes_producers() {
        let rec = unsafe { stratum(b"6a", b"ETHe", b" Tim", 1.0) }.unwrap();
        let mut header = [9u8; 80];
        header[72..76].copy_from_slice(&0x1d00ffffu32.to_le_bytes());
        header[76] = 8;
        let hdr = ShareRecord::header(2, &header, ShareTarget::Difficulty(1.0));
        let mut std_ = blank();
        let mut ext = blank();
        unsafe {
            let id = b"17";
            let rc = sharecheck_share_sv2_standard(
                &mut std_,
                3,
                id.as_ptr().cast(),
                2,
                0x2000_0000,
                7,
                8,
                1.0,
                std::ptr::null(),
            );
            assert_eq!(rc, 0);
            let (prefix, en) = ([1u8, 2, 3, 4, 5, 6, 7, 8], [9u8; 8]);
            let rc = sharecheck_share_sv2_extended(
                &mut ext,
                4,
                id.as_ptr().cast(),
                2,
                prefix.as_ptr(),
                8,
                en.as_ptr(),
                8,
                0x2000_0000,
                7,
                8,
                1.0,
                std::ptr::null(),
            );
            assert_eq!(rc, 0);
        }
        let want: [(&ShareRecord, &[u8]); 4] = [
            (&rec, b"ETHe"),
            (&hdr, &[8]),
            (&std_, &[8]),
            (&ext, &[1, 2, 3, 4, 5, 6, 7, 8]),
        ];
        for (r, want) in want {
            let (mut k, mut n) = (std::ptr::null(), 0);
            assert_eq!(unsafe { sharecheck_share_key(r, &mut k, &mut n) }, 0);
            let key = unsafe { std::slice::from_raw_parts(k, n) };
            assert_eq!(key, want);
            assert_eq!(key, sharecheck::kafka::send::share_key(r));
        }
    }

    #[test]
    fn sv2_shares_are_the_main_crates_records() {
        let t = [0x7fu8; 32];
        let mut out = blank();
        let rc = unsafe {
            sharecheck_share_sv2_standard(
                &mut out,
                5,
                b"42".as_ptr().cast(),
                2,
                0x2000_4000,
                0x66a0e2b1,
                0x1c2d3e4f,
                f64::NAN,
                t.as_ptr(),
            )
        };
        assert_eq!(rc, 0);
        let want = ShareRecord::sv2_standard(
            5,
            "42",
            0x66a0e2b1,
            0x1c2d3e4f,
            0x2000_4000,
            ShareTarget::Target(t),
        );
        assert_eq!(out, want);
        let long = [0u8; 33];
        let mut untouched = blank();
        let rc = unsafe {
            sharecheck_share_sv2_extended(
                &mut untouched,
                6,
                b"42".as_ptr().cast(),
                2,
                long.as_ptr(),
                16,
                long.as_ptr(),
                17,
                0,
                0,
                0,
                1.0,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, SHARECHECK_ERR_SV2_EXTRANONCE_LENGTH);
        assert_eq!(untouched, blank());
        let rc = unsafe {
            sharecheck_share_sv2_standard(
                &mut out,
                5,
                b"42".as_ptr().cast(),
                2,
                0,
                0,
                0,
                0.0,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, SHARECHECK_ERR_DIFFICULTY);
    }

    #[test]
    fn a_small_buffer_reports_the_size_needed() {
        let rec = unsafe { stratum(b"6a", b"ETHe", b" Tim", 1.0) }.unwrap();
        let recs = [rec, rec];
        let mut len = 0;
        let rc = unsafe {
            sharecheck_encode_shares(recs.as_ptr(), 2, std::ptr::null_mut(), 0, &mut len)
        };
        assert_eq!((rc, len), (SHARECHECK_ERR_BUFFER_TOO_SMALL, 16 + 256));
        let mut buf = vec![0u8; len];
        let rc =
            unsafe { sharecheck_encode_shares(recs.as_ptr(), 2, buf.as_mut_ptr(), len, &mut len) };
        assert_eq!(rc, 0);
        assert_eq!(buf, encode_shares(&recs));
    }
}
