//! Verdict batches out to C (`sharecheck_verdict`), and status names.

use crate::{
    bytes, guard, SHARECHECK_ERR_BUFFER_TOO_SMALL, SHARECHECK_ERR_DECODE, SHARECHECK_ERR_NULL,
};
use sharecheck::model::{Malformed, RecordError, Status};
use sharecheck::wire::binary::decode_verdicts;
use std::ffi::{c_char, c_int, CStr};

/// One verdict, decoded (`sharecheck_verdict` in C, 136 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The share's id; meaningful when `has_id` (0 otherwise).
    pub id: u64,
    pub has_id: u8,
    /// `SHARECHECK_STATUS_*`, the codes of docs/wire-format.md.
    pub status: u8,
    /// `hash` and `difficulty` hold the share's hash and achieved difficulty.
    pub has_hash: u8,
    /// `header` holds the 80-byte block header to submit (status block).
    pub has_header: u8,
    /// Status malformed: the record error code of docs/wire-format.md (0: no code).
    pub error_code: u16,
    /// Its argument (e.g. the offending length).
    pub error_arg: u8,
    pub reserved: u8,
    pub difficulty: f64,
    /// Block-explorer order (the digest byte-reversed), as in JSON verdicts.
    pub hash: [u8; 32],
    pub header: [u8; 80],
}

const _: () = assert!(std::mem::size_of::<Verdict>() == 136);
const _: () = assert!(std::mem::align_of::<Verdict>() == 8);

impl From<&sharecheck::model::Verdict> for Verdict {
    fn from(v: &sharecheck::model::Verdict) -> Verdict {
        let (error_code, error_arg) = match &v.error {
            Some(Malformed::Record(e)) => (e.code(), e.arg()),
            _ if v.rolling_forbidden => {
                (sharecheck::wire::binary::BAD_VERSION_ROLLING_FORBIDDEN, 0)
            }
            _ => (0, 0),
        };
        Verdict {
            id: v.id.unwrap_or(0),
            has_id: v.id.is_some() as u8,
            status: v.status as u8,
            has_hash: (v.hash.is_some() && v.difficulty.is_some()) as u8,
            has_header: v.header.is_some() as u8,
            error_code,
            error_arg,
            reserved: 0,
            difficulty: v.difficulty.unwrap_or(0.0),
            hash: v.hash.unwrap_or([0; 32]),
            header: v.header.as_deref().copied().unwrap_or([0; 80]),
        }
    }
}

/// Decodes the verdict batch `msg` (compact or full records) into `out[0..*count]`. `*count`
/// gets the number of verdicts in the batch, also when it exceeds `out_cap`
/// (`SHARECHECK_ERR_BUFFER_TOO_SMALL`; `out` may then be NULL). A message that is not a valid
/// verdict batch is `SHARECHECK_ERR_DECODE`, with `*count` 0.
///
/// # Safety
/// `msg` must point to `len` readable bytes, `out` to `out_cap` writable verdicts, and
/// `count` must be writable.
#[no_mangle]
pub unsafe extern "C" fn sharecheck_decode_verdicts(
    msg: *const u8,
    len: usize,
    out: *mut Verdict,
    out_cap: usize,
    count: *mut usize,
) -> c_int {
    guard(|| {
        if count.is_null() {
            return Err(SHARECHECK_ERR_NULL);
        }
        *count = 0;
        let verdicts = decode_verdicts(bytes(msg, len)?).map_err(|_| SHARECHECK_ERR_DECODE)?;
        *count = verdicts.len();
        if verdicts.len() > out_cap {
            return Err(SHARECHECK_ERR_BUFFER_TOO_SMALL);
        }
        if out.is_null() && !verdicts.is_empty() {
            return Err(SHARECHECK_ERR_NULL);
        }
        for (i, v) in verdicts.iter().enumerate() {
            out.add(i).write(Verdict::from(v));
        }
        Ok(())
    })
}

/// Status names, in code order; kept as C strings so that C gets them without allocation.
const NAMES: [&CStr; 9] = [
    c"accepted",
    c"block",
    c"low_difficulty",
    c"duplicate",
    c"stale",
    c"unknown_job",
    c"bad_ntime",
    c"bad_version",
    c"malformed",
];

/// The name of a status code as in JSON verdicts ("accepted", "block", ...), or "unknown"
/// for a code that is none; a static string, never NULL.
#[no_mangle]
pub extern "C" fn sharecheck_status_name(status: c_int) -> *const c_char {
    u8::try_from(status)
        .ok()
        .and_then(Status::from_code)
        .map_or(c"unknown", |s| NAMES[s as usize])
        .as_ptr()
}

/// The Stratum V2 `SubmitShares.Error` codes, as C strings (mining_sv2's constants).
const SV2_ERRORS: [&CStr; 8] = [
    c"difficulty-too-low",
    c"duplicate-share",
    c"stale-share",
    c"invalid-job-id",
    c"invalid-share",
    c"version-rolling-not-allowed",
    c"invalid-non-rollable-version-bit",
    c"bad-extranonce-size",
];

/// The Stratum V2 `SubmitShares.Error` code that answers `*verdict` ("stale-share",
/// "difficulty-too-low", ...), or NULL for a share to count in `SubmitShares.Success`
/// (accepted, block) and for a verdict with an unknown status. The same mapping as the main
/// crate's `Verdict::sv2_error`, from the status and error code the verdict carries.
///
/// # Safety
/// `verdict` must be NULL or point to a `sharecheck_verdict`.
#[no_mangle]
pub unsafe extern "C" fn sharecheck_sv2_error(verdict: *const Verdict) -> *const c_char {
    let found = std::panic::catch_unwind(|| {
        let v = verdict.as_ref()?;
        let status = Status::from_code(v.status)?;
        let error = (status == Status::Malformed).then(|| {
            match RecordError::from_code(v.error_code, v.error_arg) {
                Some(e) => Malformed::Record(e),
                None => Malformed::Text(String::new()),
            }
        });
        let model = sharecheck::model::Verdict {
            error,
            rolling_forbidden: status == Status::BadVersion
                && v.error_code == sharecheck::wire::binary::BAD_VERSION_ROLLING_FORBIDDEN,
            ..sharecheck::model::Verdict::rejected(0, status)
        };
        let code = model.sv2_error()?;
        SV2_ERRORS.iter().find(|c| c.to_bytes() == code.as_bytes())
    });
    found
        .ok()
        .flatten()
        .map_or(std::ptr::null(), |c| c.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SHARECHECK_OK;
    use sharecheck::wire::binary::encode_verdicts;

    #[test]
    fn status_names_are_the_main_crates() {
        for s in Status::ALL {
            let name = unsafe { CStr::from_ptr(sharecheck_status_name(s as c_int)) };
            assert_eq!(name.to_str().unwrap(), s.as_str());
        }
        for bad in [-1, 9, 256] {
            let name = unsafe { CStr::from_ptr(sharecheck_status_name(bad)) };
            assert_eq!(name, c"unknown");
        }
    }

    fn decode(msg: &[u8], cap: usize) -> (c_int, usize, Vec<Verdict>) {
        let mut out =
            vec![Verdict::from(&sharecheck::model::Verdict::rejected(0, Status::Stale)); cap];
        let mut n = usize::MAX;
        let rc = unsafe {
            sharecheck_decode_verdicts(msg.as_ptr(), msg.len(), out.as_mut_ptr(), cap, &mut n)
        };
        (rc, n, out)
    }

    #[test]
    fn verdicts_decode_with_their_errors_and_headers() {
        let mut block = sharecheck::model::Verdict::rejected(3, Status::Block);
        block.hash = Some([0xab; 32]);
        block.difficulty = Some(2536.43);
        block.header = Some(Box::new([0x11; 80]));
        let vs = vec![
            sharecheck::model::Verdict::malformed(None, RecordError::Extranonce2Length(17).into()),
            block,
        ];
        let msg = encode_verdicts(&vs);
        let (rc, n, _) = decode(&msg, 1);
        assert_eq!((rc, n), (SHARECHECK_ERR_BUFFER_TOO_SMALL, 2));
        let (rc, n, out) = decode(&msg, 2);
        assert_eq!((rc, n), (SHARECHECK_OK, 2));
        assert_eq!(
            (
                out[0].has_id,
                out[0].status,
                out[0].error_code,
                out[0].error_arg
            ),
            (0, 8, 7, 17)
        );
        assert_eq!((out[1].id, out[1].has_hash, out[1].has_header), (3, 1, 1));
        assert_eq!(
            (out[1].hash, out[1].header, out[1].difficulty),
            ([0xab; 32], [0x11; 80], 2536.43)
        );
        let (rc, n, _) = decode(&msg[..msg.len() - 1], 2);
        assert_eq!((rc, n), (SHARECHECK_ERR_DECODE, 0));
    }

    #[test]
    fn sv2_errors_are_the_main_crates() {
        use sharecheck::model::Verdict as V;
        let mut cases: Vec<V> = Status::ALL
            .iter()
            .filter(|s| **s != Status::Malformed)
            .map(|s| V::rejected(1, *s))
            .collect();
        cases.push(V::bad_version(1, 0));
        cases.push(V::malformed(Some(1), RecordError::ExtranonceSize(3).into()));
        cases.push(V::malformed(
            Some(1),
            RecordError::Sv2ExtranonceLength(40).into(),
        ));
        cases.push(V::malformed(Some(1), RecordError::JobIdLength(0).into()));
        cases.push(V::malformed(Some(1), Malformed::Text("bad hex".into())));
        let mut seen = std::collections::BTreeSet::new();
        for v in &cases {
            // Through the wire, as a C front end gets it.
            let msg = encode_verdicts(std::slice::from_ref(v));
            let (rc, _, out) = decode(&msg, 1);
            assert_eq!(rc, SHARECHECK_OK);
            let got = unsafe { sharecheck_sv2_error(&out[0]) };
            let got = (!got.is_null())
                .then(|| unsafe { CStr::from_ptr(got) }.to_str().unwrap().to_string());
            assert_eq!(got.as_deref(), v.sv2_error(), "{v:?}");
            seen.extend(got);
        }
        assert_eq!(seen.len(), SV2_ERRORS.len(), "every code reached: {seen:?}");
        assert!(unsafe { sharecheck_sv2_error(std::ptr::null()) }.is_null());
    }
}
