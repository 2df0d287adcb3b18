//! Shared pieces of the lane-parallel engines.
//!
//! * Slice drivers: split a call into full groups of the engine's lane width and pad the ragged
//!   tail into a stack group, so that every engine handles any length the same way and never
//!   allocates.
//! * [`multibuf_engine!`]: the "structure of arrays" SHA-256 (vector `j` holds word `j` of every
//!   lane), written once over a small set of primitives and instantiated for AVX2, AVX-512 and a
//!   plain-Rust sixteen-lane vector. The plain instantiation mirrors the AVX-512 primitives
//!   one-to-one (including the transposes), so the algorithm that the AVX-512 engine runs is
//!   tested even on CPUs without AVX-512; only the primitive-to-intrinsic mapping is not.

use super::{Block, State};

/// Runs `f` over `states`/`blocks` in groups of `L`, padding the last partial group.
#[inline]
pub(crate) fn compress_by<const L: usize>(
    states: &mut [State],
    blocks: &[Block],
    mut f: impl FnMut(&mut [State; L], &[Block; L]),
) {
    let n = states.len().min(blocks.len());
    let (states, blocks) = (&mut states[..n], &blocks[..n]);
    let (sg, st) = states.as_chunks_mut::<L>();
    let (bg, bt) = blocks.as_chunks::<L>();
    for (s, b) in sg.iter_mut().zip(bg) {
        f(s, b);
    }
    if !st.is_empty() {
        let mut s = [[0; 8]; L];
        let mut b = [[0; 16]; L];
        s[..st.len()].copy_from_slice(st);
        b[..bt.len()].copy_from_slice(bt);
        f(&mut s, &b);
        st.copy_from_slice(&s[..st.len()]);
    }
}

/// Runs `f` over `states` in groups of `L`, padding the last partial group.
#[inline]
pub(crate) fn sha256_32_by<const L: usize>(
    states: &mut [State],
    mut f: impl FnMut(&mut [State; L]),
) {
    let (sg, st) = states.as_chunks_mut::<L>();
    for s in sg {
        f(s);
    }
    if !st.is_empty() {
        let mut s = [[0; 8]; L];
        s[..st.len()].copy_from_slice(st);
        f(&mut s);
        st.copy_from_slice(&s[..st.len()]);
    }
}

/// Runs `f` over `left`/`right` in groups of `L`, padding the last partial group.
#[inline]
pub(crate) fn sha256d_64_by<const L: usize>(
    left: &mut [State],
    right: &[State],
    mut f: impl FnMut(&mut [State; L], &[State; L]),
) {
    let n = left.len().min(right.len());
    let (left, right) = (&mut left[..n], &right[..n]);
    let (lg, lt) = left.as_chunks_mut::<L>();
    let (rg, rt) = right.as_chunks::<L>();
    for (l, r) in lg.iter_mut().zip(rg) {
        f(l, r);
    }
    if !lt.is_empty() {
        let mut l = [[0; 8]; L];
        let mut r = [[0; 8]; L];
        l[..lt.len()].copy_from_slice(lt);
        r[..rt.len()].copy_from_slice(rt);
        f(&mut l, &r);
        lt.copy_from_slice(&l[..lt.len()]);
    }
}

/// Runs `f` over `headers`/`out` in groups of `L`, padding the last partial group.
#[inline]
pub(crate) fn sha256d_80_by<const L: usize>(
    headers: &[[u32; 20]],
    out: &mut [State],
    mut f: impl FnMut(&[[u32; 20]; L], &mut [State; L]),
) {
    let n = headers.len().min(out.len());
    let (headers, out) = (&headers[..n], &mut out[..n]);
    let (hg, ht) = headers.as_chunks::<L>();
    let (og, ot) = out.as_chunks_mut::<L>();
    for (h, o) in hg.iter().zip(og) {
        f(h, o);
    }
    if !ht.is_empty() {
        let mut h = [[0; 20]; L];
        let mut o = [[0; 8]; L];
        h[..ht.len()].copy_from_slice(ht);
        f(&h, &mut o);
        ot.copy_from_slice(&o[..ot.len()]);
    }
}

/// Runs `f` over `mids`/`tails`/`out` in groups of `L`, padding the last partial group.
#[inline]
pub(crate) fn sha256d_80_mid_by<const L: usize>(
    mids: &[State],
    tails: &[[u32; 4]],
    out: &mut [State],
    mut f: impl FnMut(&[State; L], &[[u32; 4]; L], &mut [State; L]),
) {
    let n = mids.len().min(tails.len()).min(out.len());
    let (mg, mt) = mids[..n].as_chunks::<L>();
    let (tg, tt) = tails[..n].as_chunks::<L>();
    let (og, ot) = out[..n].as_chunks_mut::<L>();
    for ((m, t), o) in mg.iter().zip(tg).zip(og) {
        f(m, t, o);
    }
    if !mt.is_empty() {
        let mut m = [[0; 8]; L];
        let mut t = [[0; 4]; L];
        let mut o = [[0; 8]; L];
        m[..mt.len()].copy_from_slice(mt);
        t[..tt.len()].copy_from_slice(tt);
        f(&m, &t, &mut o);
        ot.copy_from_slice(&o[..ot.len()]);
    }
}

/// One SHA-256 round. The caller rotates the argument order from round to round, so only `d`
/// and `h` are written and no register moves are needed.
macro_rules! mb_round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {{
        let t1 = add(add($h, bsig1($e)), add(ch($e, $f, $g), $kw));
        let t2 = add(bsig0($a), maj($a, $b, $c));
        $d = add($d, t1);
        $h = add(t1, t2);
    }};
}
pub(crate) use mb_round;

/// Eight rounds `t0..t0+8`; `$t => $kw` gives the round input `K[t] + W[t]` for round `$t`.
macro_rules! mb_rounds8 {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident,
     $t0:expr, $t:ident => $kw:expr) => {{
        let t0 = $t0;
        {
            let $t = t0;
            $crate::sha256::multibuf::mb_round!($a, $b, $c, $d, $e, $f, $g, $h, $kw);
        }
        {
            let $t = t0 + 1;
            $crate::sha256::multibuf::mb_round!($h, $a, $b, $c, $d, $e, $f, $g, $kw);
        }
        {
            let $t = t0 + 2;
            $crate::sha256::multibuf::mb_round!($g, $h, $a, $b, $c, $d, $e, $f, $kw);
        }
        {
            let $t = t0 + 3;
            $crate::sha256::multibuf::mb_round!($f, $g, $h, $a, $b, $c, $d, $e, $kw);
        }
        {
            let $t = t0 + 4;
            $crate::sha256::multibuf::mb_round!($e, $f, $g, $h, $a, $b, $c, $d, $kw);
        }
        {
            let $t = t0 + 5;
            $crate::sha256::multibuf::mb_round!($d, $e, $f, $g, $h, $a, $b, $c, $kw);
        }
        {
            let $t = t0 + 6;
            $crate::sha256::multibuf::mb_round!($c, $d, $e, $f, $g, $h, $a, $b, $kw);
        }
        {
            let $t = t0 + 7;
            $crate::sha256::multibuf::mb_round!($b, $c, $d, $e, $f, $g, $h, $a, $kw);
        }
    }};
}
pub(crate) use mb_rounds8;

/// The lane-parallel SHA-256 operations, expanded inside a module that provides:
///
/// * `type V` (one `u32` per lane) and `const LANES: usize`;
/// * `add`, `splat`, and the SHA-256 functions `ch`, `maj`, `bsig0` (Σ0), `bsig1` (Σ1),
///   `ssig0` (σ0), `ssig1` (σ1), each on `V`;
/// * transposes between lane-major memory and word vectors: `load_states(&[State; LANES]) ->
///   [V; 8]`, `store_states(&[V; 8], &mut [State; LANES])`, `load_blocks(&[Block; LANES]) ->
///   [V; 16]` and `load_headers(&[[u32; 20]; LANES]) -> ([V; 16], [V; 4])`.
///
/// The attributes given (an inline hint and the target features) are put on every generated
/// function, so the primitives, which carry the same features, inline into them.
macro_rules! multibuf_engine {
    ($(#[$attr:meta])*) => {
        /// Sixty-four rounds on `s`, expanding the message schedule in place in `w` (a ring of
        /// the last sixteen words), then the feed-forward of `init`.
        $(#[$attr])*
        fn compress_w(s: &mut [V; 8], init: &[V; 8], w: &mut [V; 16]) {
            use $crate::sha256::multibuf::mb_rounds8;
            use $crate::sha256::K;
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *s;
            for r in 0..4 {
                if r > 0 {
                    for j in 0..16 {
                        w[j] = add(
                            add(w[j], ssig0(w[(j + 1) & 15])),
                            add(w[(j + 9) & 15], ssig1(w[(j + 14) & 15])),
                        );
                    }
                }
                let k = &K[r * 16..r * 16 + 16];
                mb_rounds8!(a, b, c, d, e, f, g, h, 0, t => add(w[t], splat(k[t])));
                mb_rounds8!(a, b, c, d, e, f, g, h, 8, t => add(w[t], splat(k[t])));
            }
            let out = [a, b, c, d, e, f, g, h];
            for j in 0..8 {
                s[j] = add(init[j], out[j]);
            }
        }

        /// Sixty-four rounds of a constant block given as its `K + W` table, then the
        /// feed-forward: no message schedule at all.
        $(#[$attr])*
        fn compress_kw(s: &mut [V; 8], kw: &[u32; 64]) {
            use $crate::sha256::multibuf::mb_rounds8;
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *s;
            for i in 0..8 {
                let kw: &[u32; 8] = &kw.as_chunks::<8>().0[i];
                mb_rounds8!(a, b, c, d, e, f, g, h, 0, t => splat(kw[t]));
            }
            let out = [a, b, c, d, e, f, g, h];
            for j in 0..8 {
                s[j] = add(s[j], out[j]);
            }
        }

        /// The initial hash value in every lane.
        $(#[$attr])*
        fn iv() -> [V; 8] {
            let v = $crate::sha256::IV;
            [
                splat(v[0]), splat(v[1]), splat(v[2]), splat(v[3]),
                splat(v[4]), splat(v[5]), splat(v[6]), splat(v[7]),
            ]
        }

        /// SHA-256 of the 32-byte digests `d` (the outer hash of a double SHA-256).
        $(#[$attr])*
        fn outer(d: &[V; 8]) -> [V; 8] {
            let tail = $crate::sha256::PAD32_TAIL;
            let mut w = [
                d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7],
                splat(tail[0]), splat(tail[1]), splat(tail[2]), splat(tail[3]),
                splat(tail[4]), splat(tail[5]), splat(tail[6]), splat(tail[7]),
            ];
            let init = iv();
            let mut s = init;
            compress_w(&mut s, &init, &mut w);
            s
        }

        /// One group of [`Engine::compress`](crate::sha256::Engine::compress).
        $(#[$attr])*
        pub(crate) fn compress_group(
            states: &mut [$crate::sha256::State; LANES],
            blocks: &[$crate::sha256::Block; LANES],
        ) {
            let init = load_states(states);
            let mut w = load_blocks(blocks);
            let mut s = init;
            compress_w(&mut s, &init, &mut w);
            store_states(&s, states);
        }

        /// One group of [`Engine::sha256_32`](crate::sha256::Engine::sha256_32).
        $(#[$attr])*
        pub(crate) fn sha256_32_group(states: &mut [$crate::sha256::State; LANES]) {
            let d = load_states(states);
            store_states(&outer(&d), states);
        }

        /// One group of [`Engine::sha256d_64`](crate::sha256::Engine::sha256d_64).
        $(#[$attr])*
        pub(crate) fn sha256d_64_group(
            left: &mut [$crate::sha256::State; LANES],
            right: &[$crate::sha256::State; LANES],
        ) {
            let l = load_states(left);
            let r = load_states(right);
            let mut w = [
                l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7],
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7],
            ];
            let init = iv();
            let mut s = init;
            compress_w(&mut s, &init, &mut w);
            compress_kw(&mut s, &$crate::sha256::PAD64_KW);
            store_states(&outer(&s), left);
        }

        /// One group of [`Engine::sha256d_80`](crate::sha256::Engine::sha256d_80).
        $(#[$attr])*
        pub(crate) fn sha256d_80_group(
            headers: &[[u32; 20]; LANES],
            out: &mut [$crate::sha256::State; LANES],
        ) {
            let (mut w, t) = load_headers(headers);
            let init = iv();
            let mut s = init;
            compress_w(&mut s, &init, &mut w);
            let p = $crate::sha256::PAD80_TAIL;
            let mut w = [
                t[0], t[1], t[2], t[3],
                splat(p[0]), splat(p[1]), splat(p[2]), splat(p[3]),
                splat(p[4]), splat(p[5]), splat(p[6]), splat(p[7]),
                splat(p[8]), splat(p[9]), splat(p[10]), splat(p[11]),
            ];
            let init = s;
            compress_w(&mut s, &init, &mut w);
            store_states(&outer(&s), out);
        }

        /// One group of [`Engine::sha256d_80_mid`](crate::sha256::Engine::sha256d_80_mid):
        /// the second block from the midstates, then the outer hash, without leaving registers.
        $(#[$attr])*
        pub(crate) fn sha256d_80_mid_group(
            mids: &[$crate::sha256::State; LANES],
            tails: &[[u32; 4]; LANES],
            out: &mut [$crate::sha256::State; LANES],
        ) {
            let mut blocks = [[0u32; 16]; LANES];
            for (b, t) in blocks.iter_mut().zip(tails) {
                b[..4].copy_from_slice(t);
                b[4..].copy_from_slice(&$crate::sha256::PAD80_TAIL);
            }
            let init = load_states(mids);
            let mut w = load_blocks(&blocks);
            let mut s = init;
            compress_w(&mut s, &init, &mut w);
            store_states(&outer(&s), out);
        }
    };
}
pub(crate) use multibuf_engine;

/// Indices for a two-source permute (`permutex2var`: index `i < 16` picks `a[i]`, `16 + i`
/// picks `b[i]`) that interleave the low halves of `a` and `b`: `[a0, b0, a1, b1, …, a7, b7]`.
pub(crate) const ZIP_LO: [u32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
/// As [`ZIP_LO`] for the high halves: `[a8, b8, …, a15, b15]`.
pub(crate) const ZIP_HI: [u32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];

/// Transposes for sixteen-lane vectors built from one primitive, `zip::<HI>(a, b)`: the
/// interleave of the low (`HI = false`, [`ZIP_LO`]) or high ([`ZIP_HI`]) halves of `a` and `b`.
/// One zip stage over `n` vectors maps element (vector `v`, position `p`) to vector
/// `2·(v mod n/2) + p₃`, position `2·(p mod 8) + v div (n/2)`: it rotates the bit string `v‖p`
/// left by one. So `k` stages rotate by `k`, and a transpose is the rotation that swaps the lane
/// bits with the word bits. Expanded where `V`, `zip`, `load16`/`store16` (sixteen words from /
/// to memory) and `load4x4` (four 4-word pieces, in order, into one vector) exist.
macro_rules! transpose16 {
    ($(#[$attr:meta])*) => {
        $(#[$attr])*
        fn zip_stage<const N: usize>(x: &[V; N]) -> [V; N] {
            let mut out = *x;
            for i in 0..N / 2 {
                out[2 * i] = zip::<false>(x[i], x[i + N / 2]);
                out[2 * i + 1] = zip::<true>(x[i], x[i + N / 2]);
            }
            out
        }

        /// Vector `k` holds states `2k` and `2k+1` (bits `lane₃₂₁ ‖ lane₀ word₂₁₀`); four
        /// stages rotate that to `word₂₁₀ ‖ lane₃₂₁₀`.
        $(#[$attr])*
        fn load_states(src: &[$crate::sha256::State; 16]) -> [V; 8] {
            let rows = src.as_flattened().as_chunks::<16>().0;
            let mut x = [splat(0); 8];
            for k in 0..8 {
                x[k] = load16(&rows[k]);
            }
            for _ in 0..4 {
                x = zip_stage(&x);
            }
            x
        }

        /// The inverse of `load_states`: three more stages complete the rotation of seven bits.
        $(#[$attr])*
        fn store_states(s: &[V; 8], dst: &mut [$crate::sha256::State; 16]) {
            let mut x = *s;
            for _ in 0..3 {
                x = zip_stage(&x);
            }
            let rows = dst.as_flattened_mut().as_chunks_mut::<16>().0;
            for k in 0..8 {
                store16(x[k], &mut rows[k]);
            }
        }

        /// A 16×16 transpose: four stages rotate `lane ‖ word` to `word ‖ lane`.
        $(#[$attr])*
        fn load_blocks(src: &[$crate::sha256::Block; 16]) -> [V; 16] {
            let mut x = [splat(0); 16];
            for i in 0..16 {
                x[i] = load16(&src[i]);
            }
            for _ in 0..4 {
                x = zip_stage(&x);
            }
            x
        }

        /// Words 0..15 as in `load_blocks`; words 16..19 come four lanes per vector
        /// (bits `lane ‖ word₁₀`), and four stages rotate those six bits to `word₁₀ ‖ lane`.
        $(#[$attr])*
        fn load_headers(src: &[[u32; 20]; 16]) -> ([V; 16], [V; 4]) {
            let mut x = [splat(0); 16];
            let mut t = [splat(0); 4];
            for i in 0..16 {
                let (head, _) = src[i].split_first_chunk::<16>().expect("20 >= 16");
                x[i] = load16(head);
            }
            for k in 0..4 {
                let tail = |i: usize| src[4 * k + i].last_chunk::<4>().expect("20 >= 4");
                t[k] = load4x4(tail(0), tail(1), tail(2), tail(3));
            }
            for _ in 0..4 {
                x = zip_stage(&x);
                t = zip_stage(&t);
            }
            (x, t)
        }
    };
}
pub(crate) use transpose16;

/// The SHA-256 bit functions for a vector type with a three-input truth-table primitive
/// `ternlog::<TABLE>(a, b, c)` (bit `4a + 2b + c` of `TABLE` is the result), `ror::<N>` and
/// `shr::<N>`: one instruction each for Ch and Maj, four for each Σ/σ.
macro_rules! ternlog_ops {
    ($(#[$attr:meta])*) => {
        /// Truth table of `a ^ b ^ c`.
        const XOR3: i32 = 0x96;
        /// Truth table of `if a { b } else { c }`.
        const SELECT: i32 = 0xca;
        /// Truth table of the bitwise majority of `a, b, c`.
        const MAJORITY: i32 = 0xe8;

        $(#[$attr])*
        fn ch(e: V, f: V, g: V) -> V {
            ternlog::<SELECT>(e, f, g)
        }

        $(#[$attr])*
        fn maj(a: V, b: V, c: V) -> V {
            ternlog::<MAJORITY>(a, b, c)
        }

        $(#[$attr])*
        fn bsig0(x: V) -> V {
            ternlog::<XOR3>(ror::<2>(x), ror::<13>(x), ror::<22>(x))
        }

        $(#[$attr])*
        fn bsig1(x: V) -> V {
            ternlog::<XOR3>(ror::<6>(x), ror::<11>(x), ror::<25>(x))
        }

        $(#[$attr])*
        fn ssig0(x: V) -> V {
            ternlog::<XOR3>(ror::<7>(x), ror::<18>(x), shr::<3>(x))
        }

        $(#[$attr])*
        fn ssig1(x: V) -> V {
            ternlog::<XOR3>(ror::<17>(x), ror::<19>(x), shr::<10>(x))
        }
    };
}
pub(crate) use ternlog_ops;
