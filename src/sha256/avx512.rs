//! The AVX-512 engine: sixteen lanes in `__m512i`, one message per 32-bit element.
//!
//! Everything above the primitives below (rounds, schedule, transposes, constant blocks) is
//! shared with [`lanes16`](super::lanes16), whose plain-Rust primitives have exactly the
//! semantics of the intrinsics used here, so that code is tested on any CPU. What only an
//! AVX-512 CPU can check is this one-intrinsic-per-primitive mapping.

use core::arch::x86_64::*;

use super::multibuf::{self, ZIP_HI, ZIP_LO};
use super::{Block, Engine, State};

type V = __m512i;
const LANES: usize = 16;

#[inline]
#[target_feature(enable = "avx512f")]
fn add(a: V, b: V) -> V {
    _mm512_add_epi32(a, b)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(x: u32) -> V {
    _mm512_set1_epi32(x as i32)
}

/// `vpternlogd`: bit `4a + 2b + c` of `TABLE` is the result for input bits `a, b, c`.
#[inline]
#[target_feature(enable = "avx512f")]
fn ternlog<const TABLE: i32>(a: V, b: V, c: V) -> V {
    _mm512_ternarylogic_epi32::<TABLE>(a, b, c)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn ror<const N: i32>(x: V) -> V {
    _mm512_ror_epi32::<N>(x)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn shr<const N: u32>(x: V) -> V {
    _mm512_srli_epi32::<N>(x)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn load16(src: &[u32; 16]) -> V {
    // SAFETY: reads exactly the 64 bytes of `src`.
    unsafe { _mm512_loadu_si512(src.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn store16(x: V, dst: &mut [u32; 16]) {
    // SAFETY: writes exactly the 64 bytes of `dst`.
    unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), x) }
}

/// `vpermt2d` with the [`ZIP_LO`] / [`ZIP_HI`] index vectors.
#[inline]
#[target_feature(enable = "avx512f")]
fn zip<const HI: bool>(a: V, b: V) -> V {
    let idx = load16(if HI { &ZIP_HI } else { &ZIP_LO });
    _mm512_permutex2var_epi32(a, idx, b)
}

/// `a` in elements 0..3, `b` in 4..7, `c` in 8..11, `d` in 12..15.
#[inline]
#[target_feature(enable = "avx512f")]
fn load4x4(a: &[u32; 4], b: &[u32; 4], c: &[u32; 4], d: &[u32; 4]) -> V {
    // SAFETY: each load reads exactly the 16 bytes of its argument.
    let [a, b, c, d] = [a, b, c, d].map(|q| unsafe { _mm_loadu_si128(q.as_ptr().cast()) });
    let v = _mm512_castsi128_si512(a);
    let v = _mm512_inserti32x4::<1>(v, b);
    let v = _mm512_inserti32x4::<2>(v, c);
    _mm512_inserti32x4::<3>(v, d)
}

multibuf::ternlog_ops!(#[inline] #[target_feature(enable = "avx512f")]);
multibuf::transpose16!(#[inline] #[target_feature(enable = "avx512f")]);
multibuf::multibuf_engine!(#[inline] #[target_feature(enable = "avx512f")]);

/// The AVX-512 engine. It can only be obtained through [`engine`](super::engine), which checks
/// that the CPU has AVX-512F first.
///
/// ```compile_fail
/// // Not constructible outside this module: that would skip the feature check.
/// let _ = sharecheck::sha256::avx512::Avx512 { _private: () };
/// ```
#[derive(Debug)]
pub struct Avx512 {
    _private: (),
}

static ENGINE: Avx512 = Avx512 { _private: () };

/// The engine, or the CPU feature it needs that is missing.
pub(super) fn detect() -> Result<&'static Avx512, &'static str> {
    if is_x86_feature_detected!("avx512f") {
        Ok(&ENGINE)
    } else {
        Err("avx512f")
    }
}

// SAFETY (all calls below): an `Avx512` exists only after `detect` found AVX-512F.
impl Engine for Avx512 {
    fn name(&self) -> &'static str {
        "avx512"
    }
    fn lanes(&self) -> usize {
        LANES
    }
    fn compress(&self, states: &mut [State], blocks: &[Block]) {
        multibuf::compress_by(states, blocks, |s, b| unsafe { compress_group(s, b) });
    }
    fn sha256_32(&self, states: &mut [State]) {
        multibuf::sha256_32_by(states, |s| unsafe { sha256_32_group(s) });
    }
    fn sha256d_64(&self, left: &mut [State], right: &[State]) {
        multibuf::sha256d_64_by(left, right, |l, r| unsafe { sha256d_64_group(l, r) });
    }
    fn sha256d_80(&self, headers: &[[u32; 20]], out: &mut [State]) {
        multibuf::sha256d_80_by(headers, out, |h, o| unsafe { sha256d_80_group(h, o) });
    }
    fn sha256d_80_mid(&self, mids: &[State], tails: &[[u32; 4]], out: &mut [State]) {
        multibuf::sha256d_80_mid_by(mids, tails, out, |m, t, o| unsafe {
            sha256d_80_mid_group(m, t, o)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn matches_reference() {
        let Ok(e) = detect() else {
            eprintln!("skipped: this CPU lacks AVX-512F (the shared code is tested via lanes16)");
            return;
        };
        check::all(e);
    }
}
