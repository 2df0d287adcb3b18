//! The AVX2 engine: eight lanes in `__m256i`, one message per 32-bit element.
//!
//! The rounds come from the shared multi-buffer code (`multibuf_engine!`); this module supplies
//! the primitives. AVX2 has no rotate, so each rotation is two shifts and an OR.

use core::arch::x86_64::*;

use super::multibuf;
use super::{Block, Engine, State};

type V = __m256i;
const LANES: usize = 8;

#[inline]
#[target_feature(enable = "avx2")]
fn add(a: V, b: V) -> V {
    _mm256_add_epi32(a, b)
}

#[inline]
#[target_feature(enable = "avx2")]
fn splat(x: u32) -> V {
    _mm256_set1_epi32(x as i32)
}

#[inline]
#[target_feature(enable = "avx2")]
fn xor(a: V, b: V) -> V {
    _mm256_xor_si256(a, b)
}

#[inline]
#[target_feature(enable = "avx2")]
fn and(a: V, b: V) -> V {
    _mm256_and_si256(a, b)
}

/// `x` rotated right by the literal `n`.
macro_rules! ror {
    ($x:expr, $n:literal) => {
        _mm256_or_si256(
            _mm256_srli_epi32::<$n>($x),
            _mm256_slli_epi32::<{ 32 - $n }>($x),
        )
    };
}

#[inline]
#[target_feature(enable = "avx2")]
fn ch(e: V, f: V, g: V) -> V {
    xor(and(xor(f, g), e), g)
}

#[inline]
#[target_feature(enable = "avx2")]
fn maj(a: V, b: V, c: V) -> V {
    let x = xor(a, b);
    xor(and(x, xor(b, c)), b)
}

#[inline]
#[target_feature(enable = "avx2")]
fn bsig0(x: V) -> V {
    xor(xor(ror!(x, 2), ror!(x, 13)), ror!(x, 22))
}

#[inline]
#[target_feature(enable = "avx2")]
fn bsig1(x: V) -> V {
    xor(xor(ror!(x, 6), ror!(x, 11)), ror!(x, 25))
}

#[inline]
#[target_feature(enable = "avx2")]
fn ssig0(x: V) -> V {
    xor(xor(ror!(x, 7), ror!(x, 18)), _mm256_srli_epi32::<3>(x))
}

#[inline]
#[target_feature(enable = "avx2")]
fn ssig1(x: V) -> V {
    xor(xor(ror!(x, 17), ror!(x, 19)), _mm256_srli_epi32::<10>(x))
}

#[inline]
#[target_feature(enable = "avx2")]
fn load8(src: &[u32; 8]) -> V {
    // SAFETY: reads exactly the 32 bytes of `src`.
    unsafe { _mm256_loadu_si256(src.as_ptr().cast()) }
}

/// 8×8 transpose of `u32`s: interleave pairs of rows within each 128-bit half (32-bit, then
/// 64-bit granularity), then swap 128-bit halves. Its own inverse.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose(r: [V; 8]) -> [V; 8] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256::<0x20>(u0, u4),
        _mm256_permute2x128_si256::<0x20>(u1, u5),
        _mm256_permute2x128_si256::<0x20>(u2, u6),
        _mm256_permute2x128_si256::<0x20>(u3, u7),
        _mm256_permute2x128_si256::<0x31>(u0, u4),
        _mm256_permute2x128_si256::<0x31>(u1, u5),
        _mm256_permute2x128_si256::<0x31>(u2, u6),
        _mm256_permute2x128_si256::<0x31>(u3, u7),
    ]
}

#[inline]
#[target_feature(enable = "avx2")]
fn load_states(src: &[State; 8]) -> [V; 8] {
    let mut r = [splat(0); 8];
    for i in 0..8 {
        r[i] = load8(&src[i]);
    }
    transpose(r)
}

#[inline]
#[target_feature(enable = "avx2")]
fn store_states(s: &[V; 8], dst: &mut [State; 8]) {
    let r = transpose(*s);
    for i in 0..8 {
        // SAFETY: writes exactly the 32 bytes of `dst[i]`.
        unsafe { _mm256_storeu_si256(dst[i].as_mut_ptr().cast(), r[i]) };
    }
}

/// Words 0..15 of sixteen-word rows (blocks or headers) as two 8×8 transposes.
#[inline]
#[target_feature(enable = "avx2")]
fn load16<const W: usize>(src: &[[u32; W]; 8]) -> [V; 16] {
    let mut lo = [splat(0); 8];
    let mut hi = [splat(0); 8];
    for i in 0..8 {
        let halves = src[i].as_chunks::<8>().0;
        lo[i] = load8(&halves[0]);
        hi[i] = load8(&halves[1]);
    }
    let (lo, hi) = (transpose(lo), transpose(hi));
    let mut w = [splat(0); 16];
    w[..8].copy_from_slice(&lo);
    w[8..].copy_from_slice(&hi);
    w
}

#[inline]
#[target_feature(enable = "avx2")]
fn load_blocks(src: &[Block; 8]) -> [V; 16] {
    load16(src)
}

/// Words 16..19 come as rows `i` and `i + 4` in the two 128-bit halves of one vector, so a
/// 4×4 transpose within each half finishes them.
#[inline]
#[target_feature(enable = "avx2")]
fn load_headers(src: &[[u32; 20]; 8]) -> ([V; 16], [V; 4]) {
    let w = load16(src);
    let mut r = [splat(0); 4];
    for i in 0..4 {
        let lo = src[i].last_chunk::<4>().expect("20 >= 4");
        let hi = src[i + 4].last_chunk::<4>().expect("20 >= 4");
        // SAFETY: reads exactly the 16 bytes of each of `lo` and `hi`.
        r[i] = unsafe { _mm256_loadu2_m128i(hi.as_ptr().cast(), lo.as_ptr().cast()) };
    }
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t = [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ];
    (w, t)
}

multibuf::multibuf_engine!(#[inline] #[target_feature(enable = "avx2")]);

/// The AVX2 engine. It can only be obtained through [`engine`](super::engine), which checks
/// that the CPU has AVX2 first.
#[derive(Debug)]
pub struct Avx2 {
    _private: (),
}

static ENGINE: Avx2 = Avx2 { _private: () };

/// The engine, or the CPU feature it needs that is missing.
pub(super) fn detect() -> Result<&'static Avx2, &'static str> {
    if is_x86_feature_detected!("avx2") {
        Ok(&ENGINE)
    } else {
        Err("avx2")
    }
}

// SAFETY (all calls below): an `Avx2` exists only after `detect` found AVX2.
impl Engine for Avx2 {
    fn name(&self) -> &'static str {
        "avx2"
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
            eprintln!("skipped: this CPU lacks AVX2");
            return;
        };
        check::all(e);
    }
}
