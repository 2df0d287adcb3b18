//! A portable sixteen-lane engine in plain Rust.
//!
//! Its vector is `[u32; 16]` and its primitives reproduce the AVX-512 instructions that
//! [`avx512`](super::avx512) maps them to (`vpternlogd`'s truth tables, `vprord`, the
//! `vpermt2d` transposes), so the sixteen-lane algorithm is tested on any CPU. It exists for that
//! coverage, not for speed: built for baseline x86-64 (no vector rotate) the compiler
//! scalarises it and it runs slower than the scalar engine, so [`engine`](super::engine) does
//! not offer it.

use super::multibuf::{self, ZIP_HI, ZIP_LO};
use super::{Block, Engine, State};

type V = [u32; 16];
const LANES: usize = 16;

#[inline(always)]
fn add(a: V, b: V) -> V {
    core::array::from_fn(|i| a[i].wrapping_add(b[i]))
}

#[inline(always)]
fn splat(x: u32) -> V {
    [x; 16]
}

/// `vpternlogd`: bit `4a + 2b + c` of `TABLE` is the result for input bits `a, b, c`.
///
/// The three tables the engine uses get direct formulas (the general minterm sum does not
/// simplify well); the `ternlog_tables` test checks them against the general definition.
#[inline(always)]
fn ternlog<const TABLE: i32>(a: V, b: V, c: V) -> V {
    core::array::from_fn(|i| {
        let (a, b, c) = (a[i], b[i], c[i]);
        match TABLE {
            XOR3 => a ^ b ^ c,
            SELECT => (a & b) | (!a & c),
            MAJORITY => (a & b) | (a & c) | (b & c),
            _ => ternlog_minterms(TABLE, a, b, c),
        }
    })
}

/// The general definition of `vpternlogd` on one element: the OR of the minterms whose bit
/// is set in `table`.
fn ternlog_minterms(table: i32, a: u32, b: u32, c: u32) -> u32 {
    let mut r = 0;
    for m in 0..8 {
        if table >> m & 1 == 1 {
            let pick = |x: u32, bit: i32| if m & bit != 0 { x } else { !x };
            r |= pick(a, 4) & pick(b, 2) & pick(c, 1);
        }
    }
    r
}

#[inline(always)]
fn ror<const N: i32>(x: V) -> V {
    x.map(|v| v.rotate_right(N as u32))
}

#[inline(always)]
fn shr<const N: u32>(x: V) -> V {
    x.map(|v| v >> N)
}

/// `vpermt2d`: index `i < 16` picks `a[i]`, index `16 + i` picks `b[i]`.
#[inline(always)]
fn permutex2var(a: V, idx: [u32; 16], b: V) -> V {
    idx.map(|j| {
        let j = j as usize & 31;
        if j < 16 {
            a[j]
        } else {
            b[j - 16]
        }
    })
}

#[inline(always)]
fn zip<const HI: bool>(a: V, b: V) -> V {
    permutex2var(a, if HI { ZIP_HI } else { ZIP_LO }, b)
}

#[inline(always)]
fn load16(src: &[u32; 16]) -> V {
    *src
}

#[inline(always)]
fn store16(x: V, dst: &mut [u32; 16]) {
    *dst = x;
}

#[inline(always)]
fn load4x4(a: &[u32; 4], b: &[u32; 4], c: &[u32; 4], d: &[u32; 4]) -> V {
    let mut v = [0; 16];
    for (chunk, src) in v.as_chunks_mut::<4>().0.iter_mut().zip([a, b, c, d]) {
        *chunk = *src;
    }
    v
}

// Everything inlined: without target features there is no boundary to keep, and the
// truth-table emulation only becomes cheap once its table is a constant.
multibuf::ternlog_ops!(#[inline(always)]);
multibuf::transpose16!(#[inline(always)]);
multibuf::multibuf_engine!(#[inline]);

/// The portable sixteen-lane engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lanes16;

/// The portable sixteen-lane engine, usable on every CPU.
pub static LANES16: Lanes16 = Lanes16;

impl Engine for Lanes16 {
    fn name(&self) -> &'static str {
        "lanes16"
    }
    fn lanes(&self) -> usize {
        LANES
    }
    fn compress(&self, states: &mut [State], blocks: &[Block]) {
        multibuf::compress_by(states, blocks, compress_group);
    }
    fn sha256_32(&self, states: &mut [State]) {
        multibuf::sha256_32_by(states, sha256_32_group);
    }
    fn sha256d_64(&self, left: &mut [State], right: &[State]) {
        multibuf::sha256d_64_by(left, right, sha256d_64_group);
    }
    fn sha256d_80(&self, headers: &[[u32; 20]], out: &mut [State]) {
        multibuf::sha256d_80_by(headers, out, sha256d_80_group);
    }
    fn sha256d_80_mid(&self, mids: &[State], tails: &[[u32; 4]], out: &mut [State]) {
        multibuf::sha256d_80_mid_by(mids, tails, out, sha256d_80_mid_group);
    }
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn matches_reference() {
        check::all(&LANES16);
    }

    #[test]
    fn ternlog_tables() {
        let (a, b, c) = (splat(0xf0f0_f0f0), splat(0xcccc_cccc), splat(0xaaaa_aaaa));
        // With these inputs, bit m of each byte has (a, b, c) = the bits of m, so the result
        // is the truth table repeated.
        for table in [XOR3, SELECT, MAJORITY] {
            assert_eq!(
                ternlog_minterms(table, a[0], b[0], c[0]),
                table as u32 * 0x0101_0101
            );
        }
        assert_eq!(ternlog::<XOR3>(a, b, c)[0], XOR3 as u32 * 0x0101_0101);
        assert_eq!(ternlog::<SELECT>(a, b, c)[5], SELECT as u32 * 0x0101_0101);
        assert_eq!(
            ternlog::<MAJORITY>(a, b, c)[7],
            MAJORITY as u32 * 0x0101_0101
        );
        let odd = ternlog::<0x1b>(a, b, c);
        assert_eq!(odd[0], ternlog_minterms(0x1b, a[0], b[0], c[0]));
        let (x, y, z) = (splat(0x1234_5678), splat(0x9abc_def0), splat(0x0f1e_2d3c));
        assert_eq!(
            ch(x, y, z)[3],
            (0x1234_5678 & 0x9abc_def0) ^ (!0x1234_5678 & 0x0f1e_2d3c)
        );
        assert_eq!(
            maj(x, y, z)[9],
            (0x1234_5678 & 0x9abc_def0) ^ (0x1234_5678 & 0x0f1e_2d3c) ^ (0x9abc_def0 & 0x0f1e_2d3c)
        );
    }

    #[test]
    fn transposes() {
        let states: [State; 16] =
            core::array::from_fn(|l| core::array::from_fn(|w| (l * 100 + w) as u32));
        let x = load_states(&states);
        for (w, v) in x.iter().enumerate() {
            for (l, &e) in v.iter().enumerate() {
                assert_eq!(e, (l * 100 + w) as u32);
            }
        }
        let mut back = [[0; 8]; 16];
        store_states(&x, &mut back);
        assert_eq!(back, states);
        let headers: [[u32; 20]; 16] =
            core::array::from_fn(|l| core::array::from_fn(|w| (l * 100 + w) as u32));
        let (x, t) = load_headers(&headers);
        for (w, v) in x.iter().chain(&t).enumerate() {
            for (l, &e) in v.iter().enumerate() {
                assert_eq!(e, (l * 100 + w) as u32);
            }
        }
    }
}
