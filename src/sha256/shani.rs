//! The SHA-NI engine: x86 SHA extensions, several independent messages interleaved.
//!
//! `sha256rnds2` does two rounds but each depends on the previous one's result, so a single
//! message stream is bound by its latency (about 130 cycles per compression on Zen 4) while the
//! unit could start a new one far more often. Interleaving [`WIDTH`] independent streams in one
//! instruction stream fills those gaps; the round code is generic over the stream count so
//! other widths can be measured by changing one constant.
//!
//! Register layout follows Intel's reference code: the state lives in two registers, `ABEF`
//! (elements 3..0 = a, b, e, f) and `CDGH`, and a message register holds four consecutive
//! schedule words with the earliest in element 0.

use core::arch::x86_64::*;

use super::multibuf;
use super::{Block, Engine, State, IV, K, PAD32_TAIL, PAD64_KW, PAD80_TAIL};

/// Streams interleaved per group; 4 measured fastest on Zen 4 (2 leaves `sha256rnds2` latency
/// exposed, 8 spills the sixteen XMM registers heavily).
pub const WIDTH: usize = 4;

/// `[ABEF, CDGH]`.
type St = [__m128i; 2];
/// Four message registers: schedule words `4g..4g+4` in register `g mod 4`.
type Msg = [__m128i; 4];

/// Four `u32`s, aligned for a plain load.
#[derive(Clone, Copy)]
#[repr(align(16))]
struct Q([u32; 4]);

/// `K` in groups of four.
static K4: [Q; 16] = {
    let mut q = [Q([0; 4]); 16];
    let mut i = 0;
    while i < 64 {
        q[i / 4].0[i % 4] = K[i];
        i += 1;
    }
    q
};

/// `K + W` of the constant `PAD64` block in groups of four.
static PAD64_KW4: [Q; 16] = {
    let mut q = [Q([0; 4]); 16];
    let mut i = 0;
    while i < 64 {
        q[i / 4].0[i % 4] = PAD64_KW[i];
        i += 1;
    }
    q
};

#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn ld(q: &Q) -> __m128i {
    // SAFETY: `Q` is 16 bytes, 16-byte aligned.
    unsafe { _mm_load_si128(q.0.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn ldu(w: &[u32; 4]) -> __m128i {
    // SAFETY: reads exactly the 16 bytes of `w`.
    unsafe { _mm_loadu_si128(w.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn stu(x: __m128i, w: &mut [u32; 4]) {
    // SAFETY: writes exactly the 16 bytes of `w`.
    unsafe { _mm_storeu_si128(w.as_mut_ptr().cast(), x) }
}

/// Four constant words, earliest in element 0.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn cw(w: [u32; 4]) -> __m128i {
    _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
}

/// State words `[a b c d]`, `[e f g h]` (earliest in element 0) to `[ABEF, CDGH]`.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn pack(abcd: __m128i, efgh: __m128i) -> St {
    let cdab = _mm_shuffle_epi32::<0xb1>(abcd);
    let hgfe = _mm_shuffle_epi32::<0x1b>(efgh);
    [
        _mm_alignr_epi8::<8>(cdab, hgfe),
        _mm_blend_epi16::<0xf0>(hgfe, cdab),
    ]
}

/// The inverse of [`pack`].
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn unpack(s: &St) -> [__m128i; 2] {
    let feba = _mm_shuffle_epi32::<0x1b>(s[0]);
    let dchg = _mm_shuffle_epi32::<0xb1>(s[1]);
    [
        _mm_blend_epi16::<0xf0>(feba, dchg),
        _mm_alignr_epi8::<8>(dchg, feba),
    ]
}

#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load_state(s: &State) -> St {
    let (lo, hi) = s.as_chunks::<4>().0.split_at(1);
    pack(ldu(&lo[0]), ldu(&hi[0]))
}

#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn store_state(s: &St, out: &mut State) {
    let [abcd, efgh] = unpack(s);
    let q = out.as_chunks_mut::<4>().0;
    stu(abcd, &mut q[0]);
    stu(efgh, &mut q[1]);
}

#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn iv() -> St {
    pack(
        cw([IV[0], IV[1], IV[2], IV[3]]),
        cw([IV[4], IV[5], IV[6], IV[7]]),
    )
}

#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn add2(s: &mut St, init: &St) {
    s[0] = _mm_add_epi32(s[0], init[0]);
    s[1] = _mm_add_epi32(s[1], init[1]);
}

/// Four rounds with `kw` = `K + W` for them.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rounds4(s: &mut St, kw: __m128i) {
    s[1] = _mm_sha256rnds2_epu32(s[1], s[0], kw);
    s[0] = _mm_sha256rnds2_epu32(s[0], s[1], _mm_shuffle_epi32::<0x0e>(kw));
}

/// Schedule words `4g..4g+4` into `m[g mod 4]` (which held words `4g-16..4g-12`).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn schedule4<const G: usize>(m: &mut Msg) {
    let t = _mm_sha256msg1_epu32(m[G % 4], m[(G + 1) % 4]);
    let t = _mm_add_epi32(t, _mm_alignr_epi8::<4>(m[(G + 3) % 4], m[(G + 2) % 4]));
    m[G % 4] = _mm_sha256msg2_epu32(t, m[(G + 3) % 4]);
}

/// Rounds `4g..4g+4` of every stream. As soon as group `g`'s words have been added to `K`,
/// their register is refilled with group `g + 4`, so the schedule runs well ahead of the rounds
/// that need it. The loop over the streams is what interleaves them.
macro_rules! group {
    ($s:ident, $m:ident, $g:literal) => {
        for i in 0..N {
            let kw = _mm_add_epi32($m[i][$g % 4], ld(&K4[$g]));
            if $g < 12 {
                schedule4::<{ $g + 4 }>(&mut $m[i]);
            }
            rounds4(&mut $s[i], kw);
        }
    };
}

/// Sixty-four rounds of `N` streams with messages `m` (its words are overwritten by the
/// schedule), no feed-forward.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rounds<const N: usize>(s: &mut [St; N], m: &mut [Msg; N]) {
    group!(s, m, 0);
    group!(s, m, 1);
    group!(s, m, 2);
    group!(s, m, 3);
    group!(s, m, 4);
    group!(s, m, 5);
    group!(s, m, 6);
    group!(s, m, 7);
    group!(s, m, 8);
    group!(s, m, 9);
    group!(s, m, 10);
    group!(s, m, 11);
    group!(s, m, 12);
    group!(s, m, 13);
    group!(s, m, 14);
    group!(s, m, 15);
}

/// Compression of the constant `PAD64` block into `N` streams, feed-forward included.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_pad64<const N: usize>(s: &mut [St; N]) {
    let init = *s;
    for kw in &PAD64_KW4 {
        for st in s.iter_mut() {
            rounds4(st, ld(kw));
        }
    }
    for (st, i) in s.iter_mut().zip(&init) {
        add2(st, i);
    }
}

/// SHA-256 of the 32-byte digests in `s` (feed-forward done).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn outer<const N: usize>(s: &[St; N]) -> [St; N] {
    let p = PAD32_TAIL;
    let mut m = [[_mm_setzero_si128(); 4]; N];
    for (mi, si) in m.iter_mut().zip(s) {
        let [abcd, efgh] = unpack(si);
        *mi = [
            abcd,
            efgh,
            cw([p[0], p[1], p[2], p[3]]),
            cw([p[4], p[5], p[6], p[7]]),
        ];
    }
    let mut o = [iv(); N];
    rounds(&mut o, &mut m);
    for st in &mut o {
        add2(st, &iv());
    }
    o
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_group<const N: usize>(states: &mut [State; N], blocks: &[Block; N]) {
    let mut s = [[_mm_setzero_si128(); 2]; N];
    let mut m = [[_mm_setzero_si128(); 4]; N];
    for i in 0..N {
        s[i] = load_state(&states[i]);
        let q = blocks[i].as_chunks::<4>().0;
        m[i] = [ldu(&q[0]), ldu(&q[1]), ldu(&q[2]), ldu(&q[3])];
    }
    let init = s;
    rounds(&mut s, &mut m);
    for i in 0..N {
        add2(&mut s[i], &init[i]);
        store_state(&s[i], &mut states[i]);
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha256_32_group<const N: usize>(states: &mut [State; N]) {
    let mut s = [[_mm_setzero_si128(); 2]; N];
    for i in 0..N {
        s[i] = load_state(&states[i]);
    }
    let o = outer(&s);
    for i in 0..N {
        store_state(&o[i], &mut states[i]);
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha256d_64_group<const N: usize>(left: &mut [State; N], right: &[State; N]) {
    let mut m = [[_mm_setzero_si128(); 4]; N];
    for i in 0..N {
        let l = left[i].as_chunks::<4>().0;
        let r = right[i].as_chunks::<4>().0;
        m[i] = [ldu(&l[0]), ldu(&l[1]), ldu(&r[0]), ldu(&r[1])];
    }
    let mut s = [iv(); N];
    rounds(&mut s, &mut m);
    for st in &mut s {
        add2(st, &iv());
    }
    compress_pad64(&mut s);
    let o = outer(&s);
    for i in 0..N {
        store_state(&o[i], &mut left[i]);
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha256d_80_group<const N: usize>(headers: &[[u32; 20]; N], out: &mut [State; N]) {
    let p = PAD80_TAIL;
    let mut m = [[_mm_setzero_si128(); 4]; N];
    for i in 0..N {
        let q = headers[i].as_chunks::<4>().0;
        m[i] = [ldu(&q[0]), ldu(&q[1]), ldu(&q[2]), ldu(&q[3])];
    }
    let mut s = [iv(); N];
    rounds(&mut s, &mut m);
    for st in &mut s {
        add2(st, &iv());
    }
    for i in 0..N {
        let q = headers[i].as_chunks::<4>().0;
        m[i] = [
            ldu(&q[4]),
            cw([p[0], p[1], p[2], p[3]]),
            cw([p[4], p[5], p[6], p[7]]),
            cw([p[8], p[9], p[10], p[11]]),
        ];
    }
    let init = s;
    rounds(&mut s, &mut m);
    for i in 0..N {
        add2(&mut s[i], &init[i]);
    }
    let o = outer(&s);
    for i in 0..N {
        store_state(&o[i], &mut out[i]);
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha256d_80_mid_group<const N: usize>(
    mids: &[State; N],
    tails: &[[u32; 4]; N],
    out: &mut [State; N],
) {
    let p = PAD80_TAIL;
    let mut s = [[_mm_setzero_si128(); 2]; N];
    let mut m = [[_mm_setzero_si128(); 4]; N];
    for i in 0..N {
        s[i] = load_state(&mids[i]);
        m[i] = [
            ldu(&tails[i]),
            cw([p[0], p[1], p[2], p[3]]),
            cw([p[4], p[5], p[6], p[7]]),
            cw([p[8], p[9], p[10], p[11]]),
        ];
    }
    let init = s;
    rounds(&mut s, &mut m);
    for i in 0..N {
        add2(&mut s[i], &init[i]);
    }
    let o = outer(&s);
    for i in 0..N {
        store_state(&o[i], &mut out[i]);
    }
}

/// The SHA-NI engine, interleaving `N` streams. It can only be obtained through
/// [`engine`](super::engine) (or [`detect_width_for_bench`]), which check that the CPU has the
/// features its code uses.
#[derive(Debug)]
pub struct ShaNi<const N: usize> {
    _private: (),
}

static ENGINE: ShaNi<WIDTH> = ShaNi { _private: () };

/// The engine, or the first CPU feature it needs that is missing.
pub(super) fn detect() -> Result<&'static ShaNi<WIDTH>, &'static str> {
    detect_width::<WIDTH>(&ENGINE)
}

fn detect_width<const N: usize>(e: &'static ShaNi<N>) -> Result<&'static ShaNi<N>, &'static str> {
    let features = [
        ("sha", is_x86_feature_detected!("sha")),
        ("sse2", is_x86_feature_detected!("sse2")),
        ("ssse3", is_x86_feature_detected!("ssse3")),
        ("sse4.1", is_x86_feature_detected!("sse4.1")),
    ];
    match features.iter().find(|(_, has)| !has) {
        Some((name, _)) => Err(name),
        None => Ok(e),
    }
}

/// Other interleave widths, for measuring; gated by the same detection.
#[doc(hidden)]
pub fn detect_width_for_bench(width: usize) -> Option<&'static dyn Engine> {
    static W1: ShaNi<1> = ShaNi { _private: () };
    static W2: ShaNi<2> = ShaNi { _private: () };
    static W4: ShaNi<4> = ShaNi { _private: () };
    static W8: ShaNi<8> = ShaNi { _private: () };
    match width {
        1 => detect_width(&W1).ok().map(|e| e as &dyn Engine),
        2 => detect_width(&W2).ok().map(|e| e as &dyn Engine),
        4 => detect_width(&W4).ok().map(|e| e as &dyn Engine),
        8 => detect_width(&W8).ok().map(|e| e as &dyn Engine),
        _ => None,
    }
}

// SAFETY (all calls below): a `ShaNi` exists only after `detect_width` found every feature
// that the `#[target_feature]` functions are compiled for.
impl<const N: usize> Engine for ShaNi<N> {
    fn name(&self) -> &'static str {
        "sha-ni"
    }
    fn lanes(&self) -> usize {
        N
    }
    fn compress(&self, states: &mut [State], blocks: &[Block]) {
        multibuf::compress_by(states, blocks, |s, b| unsafe { compress_group::<N>(s, b) });
    }
    fn sha256_32(&self, states: &mut [State]) {
        multibuf::sha256_32_by(states, |s| unsafe { sha256_32_group::<N>(s) });
    }
    fn sha256d_64(&self, left: &mut [State], right: &[State]) {
        multibuf::sha256d_64_by(left, right, |l, r| unsafe { sha256d_64_group::<N>(l, r) });
    }
    fn sha256d_80(&self, headers: &[[u32; 20]], out: &mut [State]) {
        multibuf::sha256d_80_by(headers, out, |h, o| unsafe { sha256d_80_group::<N>(h, o) });
    }
    fn sha256d_80_mid(&self, mids: &[State], tails: &[[u32; 4]], out: &mut [State]) {
        multibuf::sha256d_80_mid_by(mids, tails, out, |m, t, o| unsafe {
            sha256d_80_mid_group::<N>(m, t, o)
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
            eprintln!("skipped: this CPU lacks SHA-NI");
            return;
        };
        check::all(e);
        for w in [1, 2, 4, 8] {
            check::all(detect_width_for_bench(w).unwrap());
        }
    }
}
