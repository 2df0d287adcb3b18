//! The C ABI of sharecheck, for stratum servers written in C or C++ (ckpool, btcpool).
//!
//! A C server (Stratum V1 or V2) builds share records, frames them into share batches,
//! encodes its jobs, and reads verdict batches, all in the binary wire format of
//! docs/wire-format.md. Kafka is not in here: such servers already link librdkafka and publish
//! the bytes themselves (examples/c/producer.c). `include/sharecheck.h` declares every function and type of this
//! crate; the two are kept in step by the tests of `tests/c_abi.rs`, which compile a C
//! program against the header and the built library.
//!
//! Every function returns 0 or a negative `SHARECHECK_ERR_*` code and never unwinds into C:
//! lengths are checked before any slice is made, and each body runs under `catch_unwind`, so a
//! bug here is `SHARECHECK_ERR_INTERNAL`, not undefined behaviour. Outputs are written only on
//! success, except the needed length a too-small buffer reports.

use std::ffi::{c_char, c_int, CStr};

mod job;
mod share;
mod verdict;

pub use job::{
    sharecheck_encode_activation, sharecheck_encode_job, sharecheck_encode_standard_job,
    sharecheck_prevhash_from_stratum, Job, StandardJob, ACTIVATION_SIZE, JOB_MAX_SIZE,
    STANDARD_JOB_SIZE,
};
pub use share::{
    sharecheck_encode_shares, sharecheck_share_header, sharecheck_share_key,
    sharecheck_share_stratum, sharecheck_share_sv2_extended, sharecheck_share_sv2_standard,
};
pub use verdict::{
    sharecheck_decode_verdicts, sharecheck_status_name, sharecheck_sv2_error, Verdict,
};

/// Version of this ABI (`SHARECHECK_ABI_VERSION`); bumped on any incompatible change of a
/// signature or a struct layout.
pub const ABI_VERSION: u32 = 2;

/// The Kafka header of a share message that names where its verdicts go.
pub const HEADER_REPLY_TO: &str = sharecheck::kafka::reply::H_REPLY_TO;

pub const SHARECHECK_OK: c_int = 0;
pub const SHARECHECK_ERR_NULL: c_int = -1;
pub const SHARECHECK_ERR_BUFFER_TOO_SMALL: c_int = -2;
pub const SHARECHECK_ERR_JOB_ID_LENGTH: c_int = -3;
pub const SHARECHECK_ERR_JOB_ID_UTF8: c_int = -4;
pub const SHARECHECK_ERR_EXTRANONCE1_LENGTH: c_int = -5;
pub const SHARECHECK_ERR_EXTRANONCE2_LENGTH: c_int = -6;
pub const SHARECHECK_ERR_DIFFICULTY: c_int = -7;
pub const SHARECHECK_ERR_ZERO_TARGET: c_int = -8;
pub const SHARECHECK_ERR_HEADER_NBITS: c_int = -9;
pub const SHARECHECK_ERR_COINBASE_LENGTH: c_int = -10;
pub const SHARECHECK_ERR_BRANCH_LENGTH: c_int = -11;
pub const SHARECHECK_ERR_NBITS: c_int = -12;
pub const SHARECHECK_ERR_TOO_LARGE: c_int = -13;
pub const SHARECHECK_ERR_DECODE: c_int = -14;
pub const SHARECHECK_ERR_INTERNAL: c_int = -15;
pub const SHARECHECK_ERR_SV2_EXTRANONCE_LENGTH: c_int = -16;

/// Every code with its name in the header and its message, in one table so that
/// `sharecheck_strerror` and the header check of the tests cannot drift apart.
pub const ERRORS: &[(c_int, &str, &CStr)] = &[
    (SHARECHECK_OK, "SHARECHECK_OK", c"ok"),
    (
        SHARECHECK_ERR_NULL,
        "SHARECHECK_ERR_NULL",
        c"a required pointer is NULL",
    ),
    (
        SHARECHECK_ERR_BUFFER_TOO_SMALL,
        "SHARECHECK_ERR_BUFFER_TOO_SMALL",
        c"output buffer too small (the needed size was stored)",
    ),
    (
        SHARECHECK_ERR_JOB_ID_LENGTH,
        "SHARECHECK_ERR_JOB_ID_LENGTH",
        c"job_id must be 1 to 32 bytes",
    ),
    (
        SHARECHECK_ERR_JOB_ID_UTF8,
        "SHARECHECK_ERR_JOB_ID_UTF8",
        c"job_id is not valid UTF-8",
    ),
    (
        SHARECHECK_ERR_EXTRANONCE1_LENGTH,
        "SHARECHECK_ERR_EXTRANONCE1_LENGTH",
        c"extranonce1 must be 0 to 16 bytes",
    ),
    (
        SHARECHECK_ERR_EXTRANONCE2_LENGTH,
        "SHARECHECK_ERR_EXTRANONCE2_LENGTH",
        c"extranonce2 must be 1 to 16 bytes",
    ),
    (
        SHARECHECK_ERR_DIFFICULTY,
        "SHARECHECK_ERR_DIFFICULTY",
        c"difficulty must be a finite number greater than 0",
    ),
    (
        SHARECHECK_ERR_ZERO_TARGET,
        "SHARECHECK_ERR_ZERO_TARGET",
        c"target must not be zero",
    ),
    (
        SHARECHECK_ERR_HEADER_NBITS,
        "SHARECHECK_ERR_HEADER_NBITS",
        c"the header's nbits is not a valid compact target",
    ),
    (
        SHARECHECK_ERR_COINBASE_LENGTH,
        "SHARECHECK_ERR_COINBASE_LENGTH",
        c"coinb1 and coinb2 must be at most 16384 bytes each",
    ),
    (
        SHARECHECK_ERR_BRANCH_LENGTH,
        "SHARECHECK_ERR_BRANCH_LENGTH",
        c"the merkle branch must have at most 32 entries",
    ),
    (
        SHARECHECK_ERR_NBITS,
        "SHARECHECK_ERR_NBITS",
        c"nbits is not a valid, non-zero compact target",
    ),
    (
        SHARECHECK_ERR_TOO_LARGE,
        "SHARECHECK_ERR_TOO_LARGE",
        c"count or length too large",
    ),
    (
        SHARECHECK_ERR_DECODE,
        "SHARECHECK_ERR_DECODE",
        c"not a valid verdict batch",
    ),
    (
        SHARECHECK_ERR_INTERNAL,
        "SHARECHECK_ERR_INTERNAL",
        c"internal error in sharecheck",
    ),
    (
        SHARECHECK_ERR_SV2_EXTRANONCE_LENGTH,
        "SHARECHECK_ERR_SV2_EXTRANONCE_LENGTH",
        c"extranonce_prefix and extranonce must be at most 32 bytes together",
    ),
];

/// A static message for a code returned by any function here; unknown codes get a message
/// saying so, never NULL.
#[no_mangle]
pub extern "C" fn sharecheck_strerror(code: c_int) -> *const c_char {
    ERRORS
        .iter()
        .find(|e| e.0 == code)
        .map_or(c"unknown sharecheck error code", |e| e.2)
        .as_ptr()
}

/// The ABI version the library was built with, to compare with `SHARECHECK_ABI_VERSION` of
/// the header a program was compiled against.
#[no_mangle]
pub extern "C" fn sharecheck_abi_version() -> u32 {
    ABI_VERSION
}

/// Runs an ABI function's body: its `Err` is the code returned, and a panic (a bug) becomes
/// `SHARECHECK_ERR_INTERNAL` instead of unwinding into C, which would be undefined behaviour.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), c_int>) -> c_int {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => SHARECHECK_OK,
        Ok(Err(code)) => code,
        Err(_) => SHARECHECK_ERR_INTERNAL,
    }
}

/// The `len` bytes at `ptr`. C passes `NULL, 0` for an empty field, which a Rust slice may not
/// be built from, so a zero length never reads the pointer.
///
/// # Safety
/// When `len > 0`, `ptr` must be NULL or point to `len` readable bytes that stay unchanged
/// for `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], c_int> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(SHARECHECK_ERR_NULL);
    }
    if len > isize::MAX as usize {
        return Err(SHARECHECK_ERR_TOO_LARGE);
    }
    Ok(std::slice::from_raw_parts(ptr, len))
}

/// A job id from C: 1 to 32 bytes of UTF-8.
///
/// # Safety
/// As for [`bytes`].
pub(crate) unsafe fn job_id<'a>(ptr: *const c_char, len: usize) -> Result<&'a str, c_int> {
    if len == 0 || len > sharecheck::model::job::MAX_JOB_ID {
        return Err(SHARECHECK_ERR_JOB_ID_LENGTH);
    }
    std::str::from_utf8(bytes(ptr.cast(), len)?).map_err(|_| SHARECHECK_ERR_JOB_ID_UTF8)
}

/// Copies a finished message to the caller's buffer, storing its length in `*out_len` first
/// so that a caller with too small a buffer learns the size to allocate.
///
/// # Safety
/// `out_len` must be NULL or writable; `out` must be NULL or point to `out_cap` writable bytes.
pub(crate) unsafe fn write_message(
    msg: &[u8],
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> Result<(), c_int> {
    *out_len = msg.len();
    if out_cap < msg.len() {
        return Err(SHARECHECK_ERR_BUFFER_TOO_SMALL);
    }
    if out.is_null() {
        return Err(SHARECHECK_ERR_NULL);
    }
    std::ptr::copy_nonoverlapping(msg.as_ptr(), out, msg.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_message() {
        for (code, _, msg) in ERRORS {
            let got = unsafe { CStr::from_ptr(sharecheck_strerror(*code)) };
            assert_eq!(got, *msg);
        }
        let unknown = unsafe { CStr::from_ptr(sharecheck_strerror(-1000)) };
        assert_eq!(unknown, c"unknown sharecheck error code");
        let mut codes: Vec<c_int> = ERRORS.iter().map(|e| e.0).collect();
        codes.dedup();
        assert_eq!(codes.len(), ERRORS.len(), "codes are unique and in order");
    }

    #[test]
    fn a_panic_is_an_internal_error() {
        assert_eq!(guard(|| panic!("bug")), SHARECHECK_ERR_INTERNAL);
        assert_eq!(guard(|| Err(SHARECHECK_ERR_NULL)), SHARECHECK_ERR_NULL);
        assert_eq!(guard(|| Ok(())), SHARECHECK_OK);
    }
}
