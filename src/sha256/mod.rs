//! SHA-256 compression engines.
//!
//! Everything sharecheck hashes is built from a handful of fixed-shape SHA-256 operations, and
//! every engine here implements the same [`Engine`] trait over many independent messages
//! ("lanes") at once: a portable scalar reference ([`soft`]), multi-stream SHA-NI, and AVX2 /
//! AVX-512 multi-buffer paths. As in RustCrypto's `sha2`, there is one module per instruction
//! set and the choice between them happens once, at run time, in [`detect`].
//!
//! Conventions: a [`State`] is the eight chaining words `a..h`; a digest's bytes are those words
//! written big-endian, so a 32-byte digest read back as big-endian words *is* its state. A
//! [`Block`] is sixteen message words already read big-endian from the 64 message bytes.

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
/// each as one independent message; implementations process them in groups of their lane width
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
}

/// Engine names this CPU supports, fastest first.
pub fn available() -> Vec<&'static str> {
    vec!["scalar"]
}

/// An engine by name; a name this CPU lacks is an error that says so.
pub fn engine(name: &str) -> Result<&'static dyn Engine, String> {
    static SOFT: soft::Soft = soft::Soft;
    match name {
        "scalar" => Ok(&SOFT),
        _ => Err(format!("unknown CPU path {name:?}")),
    }
}

/// The fastest engine this CPU supports.
pub fn best() -> &'static dyn Engine {
    engine(available()[0]).expect("an available engine")
}
