//! 256-bit targets: difficulty ↔ target, compact `nbits`, and hash comparison.
//!
//! Bitcoin compares a block hash as a 256-bit *little-endian* integer (the digest's last byte is
//! the most significant) against a target. All arithmetic here is exact integer arithmetic, so a
//! share right at its target is judged the same way on every backend and every machine.

use crate::sha256::State;
use std::cmp::Ordering;
use std::fmt;

/// An unsigned 256-bit integer, four 64-bit limbs, least significant first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct U256(pub [u64; 4]);

impl U256 {
    pub const ZERO: U256 = U256([0; 4]);
    pub const MAX: U256 = U256([u64::MAX; 4]);

    /// From 32 big-endian bytes (how targets are written in hex).
    pub fn from_be_bytes(b: &[u8; 32]) -> U256 {
        let mut l = [0u64; 4];
        for (i, limb) in l.iter_mut().enumerate() {
            let s = 32 - 8 * (i + 1);
            *limb = u64::from_be_bytes(b[s..s + 8].try_into().expect("8 bytes"));
        }
        U256(l)
    }

    /// To 32 big-endian bytes.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            let s = 32 - 8 * (i + 1);
            b[s..s + 8].copy_from_slice(&limb.to_be_bytes());
        }
        b
    }

    /// The value of a SHA-256d digest read as a little-endian integer, straight from the state
    /// words (digest byte `4k + j` is byte `3 - j` of word `k`).
    #[inline]
    pub fn from_hash_state(s: &State) -> U256 {
        let w = |k: usize| u64::from(s[k].swap_bytes());
        U256([
            w(0) | (w(1) << 32),
            w(2) | (w(3) << 32),
            w(4) | (w(5) << 32),
            w(6) | (w(7) << 32),
        ])
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// Closest f64 (used only for reporting achieved difficulty, never for decisions).
    pub fn to_f64(&self) -> f64 {
        self.0.iter().rev().fold(0.0f64, |acc, &limb| {
            acc * 18446744073709551616.0 + limb as f64
        })
    }

    /// Number of significant bits.
    pub fn bits(&self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + (64 - self.0[i].leading_zeros());
            }
        }
        0
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&other.0[i]) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.to_be_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The difficulty-1 target, 0x00000000FFFF0000…0000 (0xFFFF · 2^208).
pub const DIFF1: U256 = U256([0, 0, 0, 0x0000_0000_FFFF_0000]);

/// DIFF1 as a float, for reporting achieved difficulty.
pub const DIFF1_F64: f64 = 26959535291011309493156476344723991336010898738574164086137773096960.0;

/// Share target for a pool difficulty: `floor(DIFF1 / difficulty)`, computed exactly from the
/// f64's binary value (no rounding through floating point). Targets that would exceed 2^256 − 1
/// (difficulty below about 2^-32) saturate at `U256::MAX`. Returns `None` when the difficulty
/// is not a finite number > 0.
pub fn target_from_difficulty(difficulty: f64) -> Option<U256> {
    if !(difficulty.is_finite() && difficulty > 0.0) {
        return None;
    }
    // A node converts every share's difficulty, and a pool hands out few distinct ones (one
    // per miner session, changed by vardiff now and then), while the exact conversion is a
    // 320-bit division: remember the last few per thread.
    const WAYS: usize = 16;
    thread_local! {
        static RECENT: std::cell::RefCell<[(u64, U256); WAYS]> =
            const { std::cell::RefCell::new([(0, U256::ZERO); WAYS]) };
    }
    let bits = difficulty.to_bits();
    // Difficulty 0.0 (bits 0) is refused above, so key 0 marks an empty way.
    let way = (bits ^ (bits >> 29) ^ (bits >> 47)) as usize % WAYS;
    if let Some(t) = RECENT.with(|r| {
        let e = r.borrow()[way];
        (e.0 == bits).then_some(e.1)
    }) {
        return Some(t);
    }
    let t = exact_target_from_difficulty(difficulty);
    RECENT.with(|r| r.borrow_mut()[way] = (bits, t));
    Some(t)
}

/// [`target_from_difficulty`] without the cache, for a finite difficulty > 0.
fn exact_target_from_difficulty(difficulty: f64) -> U256 {
    // difficulty = m · 2^e exactly, with m a 53-bit integer.
    let bits = difficulty.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    // DIFF1 / d = 0xFFFF · 2^(208 − e) / m; floor(floor(a / m) / 2^k) = floor(a / (m · 2^k)).
    let s = 208 - e;
    if s > 300 {
        // 0xFFFF · 2^s / m ≥ 2^(s + 15 − 53) ≥ 2^256: saturate.
        return U256::MAX;
    }
    let (up, down) = if s >= 0 {
        (s as u32, 0)
    } else {
        (0, (-s) as u32)
    };
    // numerator 0xFFFF << up in a 320-bit little-endian limb array (up ≤ 300).
    let mut num = [0u64; 5];
    let limb = (up / 64) as usize;
    let sh = up % 64;
    let v = 0xFFFFu128 << sh;
    num[limb] = v as u64;
    if limb + 1 < 5 {
        num[limb + 1] = (v >> 64) as u64;
    }
    // long division by m
    let mut q = [0u64; 5];
    let mut rem: u128 = 0;
    for i in (0..5).rev() {
        let cur = (rem << 64) | num[i] as u128;
        q[i] = (cur / m as u128) as u64;
        rem = cur % m as u128;
    }
    // shift right by `down`
    if down >= 320 {
        return U256::ZERO;
    }
    let (ls, bs) = ((down / 64) as usize, down % 64);
    let mut r = [0u64; 5];
    for i in 0..5 {
        if i + ls < 5 {
            let lo = q[i + ls] >> bs;
            let hi = if bs > 0 && i + ls + 1 < 5 {
                q[i + ls + 1] << (64 - bs)
            } else {
                0
            };
            r[i] = lo | hi;
        }
    }
    if r[4] != 0 {
        return U256::MAX;
    }
    U256([r[0], r[1], r[2], r[3]])
}

/// Why a compact target cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactError {
    /// The sign bit (0x00800000) is set with a non-zero mantissa.
    Negative,
    /// The value does not fit in 256 bits.
    Overflow,
}

/// The target encoded by a compact `nbits` value, as Bitcoin Core's `SetCompact` reads it.
pub fn target_from_compact(nbits: u32) -> Result<U256, CompactError> {
    let size = nbits >> 24;
    let mut word = nbits & 0x007f_ffff;
    if word != 0 && nbits & 0x0080_0000 != 0 {
        return Err(CompactError::Negative);
    }
    if word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32)) {
        return Err(CompactError::Overflow);
    }
    if size <= 3 {
        word >>= 8 * (3 - size);
        return Ok(U256([word as u64, 0, 0, 0]));
    }
    let shift = 8 * (size - 3);
    let (limb, bs) = ((shift / 64) as usize, shift % 64);
    let v = (word as u128) << bs;
    let mut l = [0u64; 4];
    if limb < 4 {
        l[limb] = v as u64;
    }
    if limb + 1 < 4 {
        l[limb + 1] = (v >> 64) as u64;
    }
    Ok(U256(l))
}

/// Achieved difficulty of a hash: DIFF1 / hash, as a float. A zero hash (never seen in
/// practice) reports `f64::MAX` so that the value stays a finite JSON number.
pub fn achieved_difficulty(hash: &U256) -> f64 {
    if hash.is_zero() {
        return f64::MAX;
    }
    DIFF1_F64 / hash.to_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_targets_equal_the_exact_conversion() {
        // More difficulties than the cache has ways, several times over and interleaved, so
        // that ways are shared and overwritten: every answer must still be the exact one.
        let ds: Vec<f64> = (1..200)
            .map(|i| i as f64 * 0.37)
            .chain([1.0, 1024.0, 65536.5, 1e-9, 1e12, f64::MIN_POSITIVE])
            .collect();
        for _ in 0..3 {
            for &d in ds.iter().chain(ds.iter().rev()) {
                assert_eq!(
                    target_from_difficulty(d),
                    Some(exact_target_from_difficulty(d)),
                    "{d}"
                );
            }
        }
        assert_eq!(target_from_difficulty(0.0), None);
        assert_eq!(target_from_difficulty(-1.0), None);
        assert_eq!(target_from_difficulty(f64::NAN), None);
    }

    fn hex32(s: &str) -> [u8; 32] {
        let v = crate::wire::hex::decode(s).unwrap();
        v.try_into().unwrap()
    }

    #[test]
    fn difficulty_one_is_diff1() {
        assert_eq!(target_from_difficulty(1.0), Some(DIFF1));
        assert_eq!(
            target_from_difficulty(1.0).unwrap().to_be_bytes(),
            hex32("00000000ffff0000000000000000000000000000000000000000000000000000")
        );
        assert!((DIFF1.to_f64() - DIFF1_F64).abs() < 1e50);
    }

    #[test]
    fn difficulty_exact_division() {
        // 0xFFFF·2^208 / 3 = 0x5555·2^208 exactly
        let t = target_from_difficulty(3.0).unwrap();
        assert_eq!(
            t.to_be_bytes(),
            hex32("0000000055550000000000000000000000000000000000000000000000000000")
        );
        // difficulty 65536 → 0xFFFF·2^192
        assert_eq!(
            target_from_difficulty(65536.0).unwrap().to_be_bytes(),
            hex32("000000000000ffff000000000000000000000000000000000000000000000000")
        );
        // Non-power-of-two fractional difficulty: 1/3 as an f64 is m·2^-54 with m =
        // 0x15555555555555; check q·d ≤ DIFF1 < (q+1)·d via the exact relation.
        let d = 1.0f64 / 3.0;
        let t = target_from_difficulty(d).unwrap();
        assert!(t > DIFF1);
        // f64(t) ≈ DIFF1 · 3
        let ratio = t.to_f64() / DIFF1_F64;
        assert!((ratio - 3.0).abs() < 1e-12, "{ratio}");
    }

    #[test]
    fn difficulty_extremes() {
        assert_eq!(target_from_difficulty(0.0), None);
        assert_eq!(target_from_difficulty(-1.0), None);
        assert_eq!(target_from_difficulty(f64::NAN), None);
        assert_eq!(target_from_difficulty(f64::INFINITY), None);
        assert_eq!(target_from_difficulty(1e-30), Some(U256::MAX));
        assert_eq!(
            target_from_difficulty(f64::MIN_POSITIVE / 2.0),
            Some(U256::MAX)
        );
        assert_eq!(target_from_difficulty(f64::MAX), Some(U256::ZERO));
        // 2^-32 · (1 + tiny) stays below 2^256
        let t = target_from_difficulty(2f64.powi(-32)).unwrap();
        assert_eq!(t.bits(), 256);
        assert!(t < U256::MAX);
    }

    #[test]
    fn compact_targets() {
        assert_eq!(target_from_compact(0x1d00ffff), Ok(DIFF1));
        // block 100000's nbits
        assert_eq!(
            target_from_compact(0x1b04864c).unwrap().to_be_bytes(),
            hex32("000000000004864c000000000000000000000000000000000000000000000000")
        );
        assert_eq!(target_from_compact(0x01003456).unwrap(), U256::ZERO);
        assert_eq!(
            target_from_compact(0x02123456).unwrap(),
            U256([0x1234, 0, 0, 0])
        );
        assert_eq!(target_from_compact(0x04923456), Err(CompactError::Negative));
        assert_eq!(target_from_compact(0xff123456), Err(CompactError::Overflow));
        assert_eq!(
            target_from_compact(0x207fffff).unwrap().to_be_bytes(),
            hex32("7fffff0000000000000000000000000000000000000000000000000000000000")
        );
    }

    #[test]
    fn hash_state_is_little_endian() {
        // digest bytes 00 01 02 … 1f: the integer's most significant byte is 0x1f.
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let s = crate::sha256::soft::state_from_bytes(&bytes);
        let v = U256::from_hash_state(&s);
        let mut rev = bytes;
        rev.reverse();
        assert_eq!(v.to_be_bytes(), rev);
    }
}
