// SHA-256d share hashing for the wgpu backend (src/backend/wgpu.rs). One invocation per task.
//
// Everything per job (the coinb1 midstate, byte offsets, the merkle branch as state words, the
// prevhash words) is computed on the host once per job and uploaded as the job table; an
// invocation holds only what varies per share. The layouts below are defined once in
// src/backend/gpu.rs and shared with kernels/sha256d.cl.
//
// Job table (`jobs`, u32 words): JOB_WORDS words per job, then variable-length data the job
// records point into:
//   0..8   coinb1 midstate          8..16  prevhash header words
//   16     nbits as a header word   17     coinb1 tail length (bytes, < 64)
//   18     coinb2 length (bytes)    19     coinb1 total length (bytes)
//   20     merkle branch depth      21     word offset of the coinb1 tail bytes
//   22     word offset of coinb2    23     word offset of the branch (8 words per level)
// Bytes are packed four to a word, little-endian (byte i of a run is bits 8*(i%4) of word i/4),
// which is how a little-endian host lays out a byte array.
//
// Task records (`tasks`, params.stride words each, the same stride for a whole dispatch):
//   stratum share: 0 job index, 1 target pair index, 2 version, 3 ntime, 4 nonce,
//                  5 extranonce length in bytes, 6.. extranonce1 ‖ extranonce2 bytes
//   header share:  0 HEADER_JOB, 1 target pair index, 2..22 the 80 header bytes
//   header share from a midstate: 0 MID_JOB, 1 target pair index, 2..10 the SHA-256 state
//                  after the header's first 64 bytes, 10..14 header bytes 64..80
// (the host picks the smallest stride its batch needs: 8 words for 8-byte extranonces, 22 when
// the batch holds a header share, 14 when its header shares come in runs that share their
// first 64 bytes, as SV2 standard shares of one job and version do: the host hashes each
// run's first block once, and every share costs two compressions here instead of three).
//
// Target pairs (`targets`, 16 words per pair, params.ntargets pairs): share target then network
// target, each as eight 32-bit limbs, least significant first; a record names its pair. The
// shares of a batch share a handful of pairs, so this replaces 64 uploaded bytes per share.
// Used only when params.check != 0.
//
// Output (`out`, OUT_WORDS words per task): the 8 SHA-256d state words, then a word of flags:
// bit 0 = hash <= share target, bit 1 = hash <= network target, bits 8..32 = params.tag (so
// the host can tell that every task was really written by this dispatch).

override WG: u32 = 64u;

const JOB_WORDS: u32 = 32u;
const REC_HEAD_WORDS: u32 = 6u;
const HEADER_REC_WORDS: u32 = 22u;
const OUT_WORDS: u32 = 9u;
const HEADER_JOB: u32 = 0xffffffffu;
const MID_REC_WORDS: u32 = 14u;
const MID_JOB: u32 = 0xfffffffeu;

struct Params {
    n: u32,
    tag: u32,
    check: u32,
    njobs: u32,
    stride: u32,
    ntargets: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> jobs: array<u32>;
@group(0) @binding(2) var<storage, read> tasks: array<u32>;
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<storage, read_write> result: array<u32>;

var<private> K: array<u32, 64> = array<u32, 64>(
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u
);

fn rotr(x: u32, n: u32) -> u32 {
    return (x >> n) | (x << (32u - n));
}

fn bswap(x: u32) -> u32 {
    return (x >> 24u) | ((x >> 8u) & 0xff00u) | ((x << 8u) & 0xff0000u) | (x << 24u);
}

fn iv() -> array<u32, 8> {
    return array<u32, 8>(0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                         0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u);
}

fn compress(s: array<u32, 8>, blk: array<u32, 16>) -> array<u32, 8> {
    var w = blk;
    var a = s[0]; var b = s[1]; var c = s[2]; var d = s[3];
    var e = s[4]; var f = s[5]; var g = s[6]; var h = s[7];
    for (var i = 0u; i < 64u; i = i + 1u) {
        var wi: u32;
        if (i < 16u) {
            wi = w[i];
        } else {
            let w15 = w[(i + 1u) & 15u];
            let w2 = w[(i + 14u) & 15u];
            let s0 = rotr(w15, 7u) ^ rotr(w15, 18u) ^ (w15 >> 3u);
            let s1 = rotr(w2, 17u) ^ rotr(w2, 19u) ^ (w2 >> 10u);
            wi = w[i & 15u] + s0 + w[(i + 9u) & 15u] + s1;
            w[i & 15u] = wi;
        }
        let t1 = h + (rotr(e, 6u) ^ rotr(e, 11u) ^ rotr(e, 25u)) + ((e & f) ^ (~e & g)) + K[i] + wi;
        let t2 = (rotr(a, 2u) ^ rotr(a, 13u) ^ rotr(a, 22u)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    return array<u32, 8>(s[0] + a, s[1] + b, s[2] + c, s[3] + d,
                         s[4] + e, s[5] + f, s[6] + g, s[7] + h);
}

// SHA-256 of a 32-byte message given as state words (a digest).
fn sha256_32(d: array<u32, 8>) -> array<u32, 8> {
    return compress(iv(), array<u32, 16>(d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7],
                                         0x80000000u, 0u, 0u, 0u, 0u, 0u, 0u, 256u));
}

// SHA-256d of left ‖ right: one merkle level.
fn sha256d_64(l: array<u32, 8>, r: array<u32, 8>) -> array<u32, 8> {
    var s = compress(iv(), array<u32, 16>(l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7],
                                          r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]));
    s = compress(s, array<u32, 16>(0x80000000u, 0u, 0u, 0u, 0u, 0u, 0u, 0u,
                                   0u, 0u, 0u, 0u, 0u, 0u, 0u, 512u));
    return sha256_32(s);
}

// SHA-256d of an 80-byte header given as 20 big-endian words.
fn sha256d_80(h: array<u32, 20>) -> array<u32, 8> {
    var s = compress(iv(), array<u32, 16>(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7],
                                          h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]));
    s = compress(s, array<u32, 16>(h[16], h[17], h[18], h[19], 0x80000000u, 0u, 0u, 0u,
                                   0u, 0u, 0u, 0u, 0u, 0u, 0u, 640u));
    return sha256_32(s);
}

fn job_byte(word_off: u32, i: u32) -> u32 {
    return (jobs[word_off + (i >> 2u)] >> ((i & 3u) * 8u)) & 0xffu;
}

fn task_byte(base: u32, i: u32) -> u32 {
    return (tasks[base + REC_HEAD_WORDS + (i >> 2u)] >> ((i & 3u) * 8u)) & 0xffu;
}

// hash <= target, the hash read as a little-endian 256-bit integer (limb k = bswap(word k)).
fn meets(hs: array<u32, 8>, toff: u32) -> bool {
    for (var k = 0u; k < 8u; k = k + 1u) {
        let i = 7u - k;
        let v = bswap(hs[i]);
        let t = targets[toff + i];
        if (v < t) { return true; }
        if (v > t) { return false; }
    }
    return true;
}

fn stratum_header(base: u32) -> array<u32, 20> {
    let jo = tasks[base] * JOB_WORDS;
    // Never past the record, whatever the host wrote.
    let en_len = min(tasks[base + 5u], (params.stride - REC_HEAD_WORDS) * 4u);
    let t1_len = jobs[jo + 17u];
    let c2_len = jobs[jo + 18u];
    let c1_total = jobs[jo + 19u];
    let depth = jobs[jo + 20u];
    let t1_off = jobs[jo + 21u];
    let c2_off = jobs[jo + 22u];
    let br_off = jobs[jo + 23u];

    // The coinbase tail: coinb1 tail ‖ extranonce ‖ coinb2 ‖ 0x80 ‖ zeros ‖ bit length,
    // compressed onto the job's coinb1 midstate block by block.
    let data_len = t1_len + en_len + c2_len;
    let nblocks = (data_len + 9u + 63u) / 64u;
    let cb_len = c1_total + en_len + c2_len;
    var s: array<u32, 8>;
    for (var k = 0u; k < 8u; k = k + 1u) { s[k] = jobs[jo + k]; }
    for (var bi = 0u; bi < nblocks; bi = bi + 1u) {
        var blk: array<u32, 16>;
        for (var wi = 0u; wi < 16u; wi = wi + 1u) {
            var word = 0u;
            for (var j = 0u; j < 4u; j = j + 1u) {
                let p = bi * 64u + wi * 4u + j;
                var bv = 0u;
                if (p < t1_len) {
                    bv = job_byte(t1_off, p);
                } else if (p < t1_len + en_len) {
                    bv = task_byte(base, p - t1_len);
                } else if (p < data_len) {
                    bv = job_byte(c2_off, p - t1_len - en_len);
                } else if (p == data_len) {
                    bv = 0x80u;
                }
                word = (word << 8u) | bv;
            }
            blk[wi] = word;
        }
        if (bi + 1u == nblocks) {
            blk[14] = cb_len >> 29u;
            blk[15] = cb_len << 3u;
        }
        s = compress(s, blk);
    }
    // txid, then the merkle fold up the branch.
    var root = sha256_32(s);
    for (var lv = 0u; lv < depth; lv = lv + 1u) {
        var r: array<u32, 8>;
        for (var k = 0u; k < 8u; k = k + 1u) { r[k] = jobs[br_off + lv * 8u + k]; }
        root = sha256d_64(root, r);
    }
    var h: array<u32, 20>;
    h[0] = bswap(tasks[base + 2u]);
    for (var k = 0u; k < 8u; k = k + 1u) {
        h[1u + k] = jobs[jo + 8u + k];
        h[9u + k] = root[k];
    }
    h[17] = bswap(tasks[base + 3u]);
    h[18] = jobs[jo + 16u];
    h[19] = bswap(tasks[base + 4u]);
    return h;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    // Two-dimensional dispatch, so that one dispatch may hold more than 65535 work groups.
    let idx = (wid.y * nwg.x + wid.x) * WG + lid;
    if (idx >= params.n) {
        return;
    }
    let base = idx * params.stride;
    var hs: array<u32, 8>;
    if (tasks[base] == MID_JOB && params.stride >= MID_REC_WORDS) {
        // A header share of a run that shares its first 64 bytes: the host hashed them once.
        var m: array<u32, 8>;
        for (var k = 0u; k < 8u; k = k + 1u) { m[k] = tasks[base + 2u + k]; }
        let s = compress(m, array<u32, 16>(bswap(tasks[base + 10u]), bswap(tasks[base + 11u]),
                                           bswap(tasks[base + 12u]), bswap(tasks[base + 13u]),
                                           0x80000000u, 0u, 0u, 0u, 0u, 0u, 0u, 0u,
                                           0u, 0u, 0u, 640u));
        hs = sha256_32(s);
    } else {
        var h: array<u32, 20>;
        if (tasks[base] == HEADER_JOB && params.stride >= HEADER_REC_WORDS) {
            for (var k = 0u; k < 20u; k = k + 1u) { h[k] = bswap(tasks[base + 2u + k]); }
        } else if (tasks[base] < params.njobs && params.stride >= REC_HEAD_WORDS) {
            h = stratum_header(base);
        }
        // (A task naming a job outside the table is refused by the host before upload; the
        // zero header above only keeps the invocation well defined.)
        hs = sha256d_80(h);
    }
    let o = idx * OUT_WORDS;
    for (var k = 0u; k < 8u; k = k + 1u) { result[o + k] = hs[k]; }
    var flags = params.tag << 8u;
    // A target index outside the table (never written by the host) leaves both flags clear,
    // which the host's own comparison then reports.
    let ti = tasks[base + 1u];
    if (params.check != 0u && ti < params.ntargets) {
        if (meets(hs, ti * 16u)) { flags = flags | 1u; }
        if (meets(hs, ti * 16u + 8u)) { flags = flags | 2u; }
    }
    result[o + 8u] = flags;
}

// The device's own ceiling (src/backend/gpu/ceiling.rs): each invocation chains params.tag
// compressions of one block from its own state, no memory traffic in the loop; the block's
// first word takes the state's after each round, so no round can be skipped. params.n is the
// number of invocations; the state goes to result[8 * idx ..].
@compute @workgroup_size(WG)
fn ceiling(@builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let idx = (wid.y * nwg.x + wid.x) * WG + lid;
    if (idx >= params.n) {
        return;
    }
    var s = iv();
    s[0] = s[0] ^ idx;
    var w: array<u32, 16>;
    for (var k = 0u; k < 16u; k = k + 1u) { w[k] = idx + k; }
    for (var r = 0u; r < params.tag; r = r + 1u) {
        s = compress(s, w);
        w[0] = s[0];
    }
    for (var k = 0u; k < 8u; k = k + 1u) { result[idx * 8u + k] = s[k]; }
}
