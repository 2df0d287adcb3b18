//! The portable scalar reference: the oracle every other engine is tested against.

use super::{Block, Engine, State, IV, K, PAD64};

/// One SHA-256 compression of `block` into `state`.
#[inline]
pub fn compress(state: &mut State, block: &Block) {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(block);
    for t in 16..64 {
        let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
        let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16]
            .wrapping_add(s0)
            .wrapping_add(w[t - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for t in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = h
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(K[t])
            .wrapping_add(w[t]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

/// SHA-256 of a 32-byte digest given as its state words.
#[inline]
pub fn sha256_32(digest: &State) -> State {
    let mut block = [0u32; 16];
    block[..8].copy_from_slice(digest);
    block[8] = 0x8000_0000;
    block[15] = 256;
    let mut s = IV;
    compress(&mut s, &block);
    s
}

/// SHA-256d of the 64-byte message `left ‖ right`.
#[inline]
pub fn sha256d_64(left: &State, right: &State) -> State {
    let mut block = [0u32; 16];
    block[..8].copy_from_slice(left);
    block[8..].copy_from_slice(right);
    let mut s = IV;
    compress(&mut s, &block);
    compress(&mut s, &PAD64);
    sha256_32(&s)
}

/// SHA-256d of an 80-byte header given as twenty big-endian words.
#[inline]
pub fn sha256d_80(header: &[u32; 20]) -> State {
    let mut s = IV;
    let mut block: Block = header[..16].try_into().expect("16 words");
    compress(&mut s, &block);
    block = [0; 16];
    block[..4].copy_from_slice(&header[16..]);
    block[4] = 0x8000_0000;
    block[15] = 640;
    compress(&mut s, &block);
    sha256_32(&s)
}

/// SHA-256 of arbitrary bytes (used for per-job work and tests, never on the hot path).
pub fn sha256(data: &[u8]) -> State {
    let mut s = IV;
    let mut chunks = data.chunks_exact(64);
    for c in &mut chunks {
        compress(&mut s, &block_from_bytes(c));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let n = if rest.len() < 56 { 64 } else { 128 };
    tail[n - 8..n].copy_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for c in tail[..n].chunks_exact(64) {
        compress(&mut s, &block_from_bytes(c));
    }
    s
}

/// SHA-256d of arbitrary bytes.
pub fn sha256d(data: &[u8]) -> State {
    sha256_32(&sha256(data))
}

/// Reads 64 bytes as sixteen big-endian words.
#[inline]
pub fn block_from_bytes(bytes: &[u8]) -> Block {
    let mut b = [0u32; 16];
    for (w, c) in b.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    b
}

/// The digest bytes of a state (each word big-endian).
#[inline]
pub fn state_to_bytes(s: &State) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(s) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// A state from 32 digest bytes (each word big-endian).
#[inline]
pub fn state_from_bytes(b: &[u8; 32]) -> State {
    let mut s = [0u32; 8];
    for (w, c) in s.iter_mut().zip(b.chunks_exact(4)) {
        *w = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    s
}

/// The scalar engine: one message at a time, no special instructions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Soft;

impl Engine for Soft {
    fn name(&self) -> &'static str {
        "scalar"
    }
    fn lanes(&self) -> usize {
        1
    }
    fn compress(&self, states: &mut [State], blocks: &[Block]) {
        for (s, b) in states.iter_mut().zip(blocks) {
            compress(s, b);
        }
    }
    fn sha256_32(&self, states: &mut [State]) {
        for s in states {
            *s = sha256_32(s);
        }
    }
    fn sha256d_64(&self, left: &mut [State], right: &[State]) {
        for (l, r) in left.iter_mut().zip(right) {
            *l = sha256d_64(l, r);
        }
    }
    fn sha256d_80(&self, headers: &[[u32; 20]], out: &mut [State]) {
        for (h, o) in headers.iter().zip(out) {
            *o = sha256d_80(h);
        }
    }
}
