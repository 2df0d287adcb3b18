//! SHA-256 compression engines.
//!
//! Everything sharecheck hashes is built from a handful of fixed-shape SHA-256 operations, and
//! every engine here implements the same [`Engine`] trait over many independent messages
//! ("lanes") at once: a portable scalar reference ([`soft`]), multi-stream SHA-NI, and AVX2 /
//! AVX-512 multi-buffer paths. As in RustCrypto's `sha2`, there is one module per instruction
//! set and the choice between them happens once, at run time, in [`engine`] / [`best`] (which
//! check the CPU's features with `is_x86_feature_detected!`; the SIMD engines cannot be obtained
//! any other way, because running their code on a CPU without those features is undefined
//! behaviour).
//!
//! Conventions: a [`State`] is the eight chaining words `a..h`; a digest's bytes are those words
//! written big-endian, so a 32-byte digest read back as big-endian words *is* its state. A
//! [`Block`] is sixteen message words already read big-endian from the 64 message bytes.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod lanes16;
mod multibuf;
#[cfg(target_arch = "x86_64")]
pub mod shani;
pub mod soft;

/// The eight SHA-256 chaining words.
pub type State = [u32; 8];
/// One 64-byte message block as sixteen big-endian words.
pub type Block = [u32; 16];

/// The SHA-256 initial hash value.
pub const IV: State = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The SHA-256 round constants.
pub const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The padding block that follows a message of exactly 64 bytes (a merkle node's two children).
pub const PAD64: Block = [0x8000_0000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 512];

/// A SHA-256 engine working on many independent lanes at once.
///
/// Every method takes slices of equal length (any length, including 0) and treats entry `i` of
/// each as one independent message (should the lengths differ, only the common prefix is
/// processed, as with `zip`); implementations process them in groups of their lane width
/// and handle a ragged tail themselves. The fixed-shape operations exist so that a SIMD engine
/// can keep lanes in registers across the compressions of one operation and use precomputed
/// message schedules for constant padding blocks.
pub trait Engine: Send + Sync {
    /// Short name, e.g. `"scalar"`, `"sha-ni"`, `"avx2"`, `"avx512"`.
    fn name(&self) -> &'static str;

    /// How many messages the engine processes together; callers size groups as multiples.
    fn lanes(&self) -> usize;

    /// `states[i] = compress(states[i], blocks[i])`.
    fn compress(&self, states: &mut [State], blocks: &[Block]);

    /// `states[i] = SHA-256(digest bytes of states[i])`: the outer hash of a double SHA-256,
    /// i.e. one compression of `IV` with the block `states[i] ‖ 0x80000000 ‖ 0… ‖ 256`.
    fn sha256_32(&self, states: &mut [State]);

    /// Merkle step: `left[i] = SHA-256d(digest bytes of left[i] ‖ digest bytes of right[i])`
    /// (three compressions: the 64-byte message, the constant [`PAD64`] block, the outer hash).
    fn sha256d_64(&self, left: &mut [State], right: &[State]);

    /// Block-header hash: `out[i] = SHA-256d(80 header bytes)`, where `headers[i]` holds the
    /// header's 80 bytes as twenty big-endian words (three compressions).
    fn sha256d_80(&self, headers: &[[u32; 20]], out: &mut [State]);

    /// Block-header hash from a midstate: `out[i] = SHA-256d` of an 80-byte header whose first
    /// 64 bytes left the state `mids[i]` and whose last 16 bytes are `tails[i]` (four
    /// big-endian words): two compressions, for headers that share their first block (the
    /// shares of one standard job and version). Engines may fuse the two; this default runs
    /// [`Engine::compress`] and [`Engine::sha256_32`].
    fn sha256d_80_mid(&self, mids: &[State], tails: &[[u32; 4]], out: &mut [State]) {
        let n = mids.len().min(tails.len()).min(out.len());
        let mut blocks = [[0u32; 16]; 64];
        for ((m, t), o) in mids[..n]
            .chunks(64)
            .zip(tails[..n].chunks(64))
            .zip(out[..n].chunks_mut(64))
        {
            for (b, tail) in blocks.iter_mut().zip(t) {
                b[..4].copy_from_slice(tail);
                b[4..].copy_from_slice(&PAD80_TAIL);
            }
            o.copy_from_slice(m);
            self.compress(o, &blocks[..o.len()]);
            self.sha256_32(o);
        }
    }
}

/// `K[t] + W[t]` for every round of a block whose message words are all constants, so that an
/// engine can skip the message schedule of such a block entirely.
pub(crate) const fn const_kw(block: &Block) -> [u32; 64] {
    let mut w = [0u32; 64];
    let mut t = 0;
    while t < 64 {
        w[t] = if t < 16 {
            block[t]
        } else {
            let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
            let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
            w[t - 16]
                .wrapping_add(s0)
                .wrapping_add(w[t - 7])
                .wrapping_add(s1)
        };
        t += 1;
    }
    let mut kw = [0u32; 64];
    t = 0;
    while t < 64 {
        kw[t] = K[t].wrapping_add(w[t]);
        t += 1;
    }
    kw
}

/// `K + W` for the [`PAD64`] block.
pub(crate) const PAD64_KW: [u32; 64] = const_kw(&PAD64);

/// Words 8..15 of the block hashed by [`Engine::sha256_32`]: padding for a 32-byte message.
pub(crate) const PAD32_TAIL: [u32; 8] = [0x8000_0000, 0, 0, 0, 0, 0, 0, 256];

/// Words 4..15 of a block header's second block: padding for an 80-byte message.
pub(crate) const PAD80_TAIL: [u32; 12] = [0x8000_0000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 640];

/// Engine names accepted by [`engine`], fastest first.
///
/// AVX-512 leads because on Zen 4 its sixteen lanes out-run interleaved SHA-NI streams; SHA-NI
/// beats AVX2 by a wide margin wherever both exist.
pub const NAMES: [&str; 4] = ["avx512", "sha-ni", "avx2", "scalar"];

/// The engine called `name`, or why it cannot be used here.
///
/// This is the only way to obtain the SIMD engines: each is handed out only after the CPU
/// features its code is compiled for have been detected at run time.
pub fn engine(name: &str) -> Result<&'static dyn Engine, String> {
    let found: Result<&'static dyn Engine, &'static str> = match name {
        "scalar" => Ok(&soft::Soft),
        #[cfg(target_arch = "x86_64")]
        "sha-ni" => shani::detect().map(|e| e as &'static dyn Engine),
        #[cfg(target_arch = "x86_64")]
        "avx2" => avx2::detect().map(|e| e as &'static dyn Engine),
        #[cfg(target_arch = "x86_64")]
        "avx512" => avx512::detect().map(|e| e as &'static dyn Engine),
        #[cfg(not(target_arch = "x86_64"))]
        "sha-ni" | "avx2" | "avx512" => {
            return Err(format!(
                "cpu:{name} is not available on this target (x86_64 only)"
            ))
        }
        _ => {
            return Err(format!(
                "unknown SHA-256 engine {name:?}; valid names: {}",
                NAMES.join(", ")
            ))
        }
    };
    found.map_err(|feature| format!("cpu:{name} is not available on this CPU (it lacks {feature})"))
}

/// Names of the engines this CPU supports, fastest first.
pub fn available() -> Vec<&'static str> {
    NAMES.into_iter().filter(|n| engine(n).is_ok()).collect()
}

/// The fastest engine this CPU supports.
pub fn best() -> &'static dyn Engine {
    NAMES
        .into_iter()
        .find_map(|n| engine(n).ok())
        .unwrap_or(&soft::Soft)
}

/// Checks shared by the tests of every engine.
#[cfg(test)]
pub(crate) mod check {
    use super::{soft, Block, Engine, State};
    use rand::{Rng, SeedableRng};

    /// Slice lengths that cover empty, partial, exact and multiple groups of every lane width.
    pub const LENGTHS: [usize; 13] = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 100, 1000];

    fn random<T: Default + AsMut<[u32]>>(rng: &mut impl Rng, n: usize) -> Vec<T> {
        (0..n)
            .map(|_| {
                let mut x = T::default();
                rng.fill(x.as_mut());
                x
            })
            .collect()
    }

    fn headers(rng: &mut impl Rng, n: usize) -> Vec<[u32; 20]> {
        (0..n).map(|_| rng.random()).collect()
    }

    /// Every method of `e` agrees with the scalar reference on random input of every length.
    pub fn matches_soft(e: &dyn Engine) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5a25_6000 ^ e.lanes() as u64);
        for n in LENGTHS {
            let states: Vec<State> = random(&mut rng, n);
            let blocks: Vec<Block> = random(&mut rng, n);
            let right: Vec<State> = random(&mut rng, n);
            let hdrs = headers(&mut rng, n);

            let mut got = states.clone();
            e.compress(&mut got, &blocks);
            let mut want = states.clone();
            soft::Soft.compress(&mut want, &blocks);
            assert_eq!(got, want, "{} compress, n = {n}", e.name());

            let mut got = states.clone();
            e.sha256_32(&mut got);
            let want: Vec<State> = states.iter().map(soft::sha256_32).collect();
            assert_eq!(got, want, "{} sha256_32, n = {n}", e.name());

            let mut got = states.clone();
            e.sha256d_64(&mut got, &right);
            let want: Vec<State> = states
                .iter()
                .zip(&right)
                .map(|(l, r)| soft::sha256d_64(l, r))
                .collect();
            assert_eq!(got, want, "{} sha256d_64, n = {n}", e.name());

            let mut got = vec![[0u32; 8]; n];
            e.sha256d_80(&hdrs, &mut got);
            let want: Vec<State> = hdrs.iter().map(soft::sha256d_80).collect();
            assert_eq!(got, want, "{} sha256d_80, n = {n}", e.name());

            // From the midstate of each header's first block: the same hash.
            let mids: Vec<State> = hdrs
                .iter()
                .map(|h| {
                    let mut s = super::IV;
                    soft::compress(&mut s, h[..16].try_into().unwrap());
                    s
                })
                .collect();
            let tails: Vec<[u32; 4]> = hdrs.iter().map(|h| h[16..].try_into().unwrap()).collect();
            let mut got = vec![[0u32; 8]; n];
            e.sha256d_80_mid(&mids, &tails, &mut got);
            assert_eq!(got, want, "{} sha256d_80_mid, n = {n}", e.name());
        }
    }

    /// When slice lengths differ only the common prefix is touched, as with `zip`.
    pub fn common_prefix_only(e: &dyn Engine) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let states: Vec<State> = random(&mut rng, 21);
        let blocks: Vec<Block> = random(&mut rng, 19);
        let mut got = states.clone();
        e.compress(&mut got, &blocks);
        let mut want = states.clone();
        soft::Soft.compress(&mut want, &blocks);
        assert_eq!(got, want, "{} compress with unequal lengths", e.name());

        let hdrs = headers(&mut rng, 5);
        let mut got = vec![[1u32; 8]; 9];
        e.sha256d_80(&hdrs, &mut got);
        let mut want = vec![[1u32; 8]; 9];
        soft::Soft.sha256d_80(&hdrs, &mut want);
        assert_eq!(got, want, "{} sha256d_80 with unequal lengths", e.name());
    }

    /// SHA-256("abc") through `compress` of the padded block, and the genesis block's hash
    /// through `sha256d_80`, each in a group of every lane position.
    pub fn known_answers(e: &dyn Engine) {
        let mut abc = [0u32; 16];
        abc[0] = 0x6162_6380;
        abc[15] = 24;
        let want = soft::state_from_bytes(&hex32(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ));
        let n = 2 * e.lanes() + 1;
        let mut states = vec![super::IV; n];
        e.compress(&mut states, &vec![abc; n]);
        assert!(
            states.iter().all(|s| *s == want),
            "{} sha256(abc)",
            e.name()
        );

        let header = hex(concat!(
            "0100000000000000000000000000000000000000000000000000000000000000",
            "000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa",
            "4b1e5e4a29ab5f49ffff001d1dac2b7c"
        ));
        let mut words = [0u32; 20];
        for (w, c) in words.iter_mut().zip(header.chunks_exact(4)) {
            *w = u32::from_be_bytes(c.try_into().unwrap());
        }
        let mut out = vec![[0u32; 8]; n];
        e.sha256d_80(&vec![words; n], &mut out);
        let mut explorer =
            hex32("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f");
        explorer.reverse();
        let want = soft::state_from_bytes(&explorer);
        assert!(out.iter().all(|s| *s == want), "{} genesis hash", e.name());
    }

    pub fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex32(s: &str) -> [u8; 32] {
        hex(s).try_into().unwrap()
    }

    /// All the shared checks.
    pub fn all(e: &dyn Engine) {
        known_answers(e);
        matches_soft(e);
        common_prefix_only(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use sha2::Digest;

    #[test]
    fn soft_matches_sha2_crate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for len in (0..300).chain([1000, 4095, 4096, 10_000]) {
            let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let want: [u8; 32] = sha2::Sha256::digest(&data).into();
            assert_eq!(
                soft::state_to_bytes(&soft::sha256(&data)),
                want,
                "len {len}"
            );
            let want: [u8; 32] = sha2::Sha256::digest(want).into();
            assert_eq!(
                soft::state_to_bytes(&soft::sha256d(&data)),
                want,
                "len {len}"
            );
        }
    }

    #[test]
    fn soft_fixed_shapes_match_sha2_crate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        for _ in 0..100 {
            let (l, r): (State, State) = (rng.random(), rng.random());
            let mut msg = soft::state_to_bytes(&l).to_vec();
            msg.extend_from_slice(&soft::state_to_bytes(&r));
            let want: [u8; 32] = sha2::Sha256::digest(sha2::Sha256::digest(&msg)).into();
            assert_eq!(soft::state_to_bytes(&soft::sha256d_64(&l, &r)), want);

            let want: [u8; 32] = sha2::Sha256::digest(soft::state_to_bytes(&l)).into();
            assert_eq!(soft::state_to_bytes(&soft::sha256_32(&l)), want);

            let h: [u32; 20] = rng.random();
            let bytes: Vec<u8> = h.iter().flat_map(|w| w.to_be_bytes()).collect();
            let want: [u8; 32] = sha2::Sha256::digest(sha2::Sha256::digest(&bytes)).into();
            assert_eq!(soft::state_to_bytes(&soft::sha256d_80(&h)), want);
        }
    }

    #[test]
    fn pad64_kw_table() {
        // Rounds 0..15 use the block itself; the expanded entries are checked end to end by
        // every engine's sha256d_64 against the scalar reference, which does not use the table.
        for t in 0..16 {
            assert_eq!(PAD64_KW[t], K[t].wrapping_add(PAD64[t]));
        }
    }

    #[test]
    fn scalar_engine() {
        check::all(&soft::Soft);
    }

    #[test]
    fn every_available_engine() {
        let names = available();
        assert!(names.contains(&"scalar"));
        assert_eq!(best().name(), names[0]);
        for name in names {
            let e = engine(name).unwrap();
            assert_eq!(e.name(), name);
            check::all(e);
        }
    }

    #[test]
    fn dispatch_errors() {
        let err = engine("sha512").err().unwrap();
        assert!(err.contains("scalar") && err.contains("avx512"), "{err}");
        for name in NAMES {
            match engine(name) {
                Ok(e) => assert_eq!(e.name(), name),
                Err(err) => {
                    assert!(
                        err.starts_with(&format!("cpu:{name} is not available")),
                        "{err}"
                    )
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        if !std::arch::is_x86_feature_detected!("avx512f") {
            assert_eq!(
                engine("avx512").err().unwrap(),
                "cpu:avx512 is not available on this CPU (it lacks avx512f)"
            );
        }
    }
}
