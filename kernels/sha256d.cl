// SHA-256d share hashing for the OpenCL backend (src/backend/opencl.rs), OpenCL C 1.2.
// One work item per task.
//
// The buffer layouts (job table, task records, target pairs, output) are the ones documented at the top of
// kernels/sha256d.wgsl and defined in src/backend/gpu.rs; both kernels compute the same thing.
// Per-job work (the coinb1 midstate, the branch as state words, the prevhash words) is done on
// the host once per job; a work item holds only what varies per share.

#define JOB_WORDS 32u
#define REC_HEAD_WORDS 6u
#define HEADER_REC_WORDS 22u
#define OUT_WORDS 9u
#define HEADER_JOB 0xffffffffu
#define MID_REC_WORDS 14u
#define MID_JOB 0xfffffffeu

__constant uint K[64] = {
    0x428a2f98U, 0x71374491U, 0xb5c0fbcfU, 0xe9b5dba5U, 0x3956c25bU, 0x59f111f1U, 0x923f82a4U, 0xab1c5ed5U,
    0xd807aa98U, 0x12835b01U, 0x243185beU, 0x550c7dc3U, 0x72be5d74U, 0x80deb1feU, 0x9bdc06a7U, 0xc19bf174U,
    0xe49b69c1U, 0xefbe4786U, 0x0fc19dc6U, 0x240ca1ccU, 0x2de92c6fU, 0x4a7484aaU, 0x5cb0a9dcU, 0x76f988daU,
    0x983e5152U, 0xa831c66dU, 0xb00327c8U, 0xbf597fc7U, 0xc6e00bf3U, 0xd5a79147U, 0x06ca6351U, 0x14292967U,
    0x27b70a85U, 0x2e1b2138U, 0x4d2c6dfcU, 0x53380d13U, 0x650a7354U, 0x766a0abbU, 0x81c2c92eU, 0x92722c85U,
    0xa2bfe8a1U, 0xa81a664bU, 0xc24b8b70U, 0xc76c51a3U, 0xd192e819U, 0xd6990624U, 0xf40e3585U, 0x106aa070U,
    0x19a4c116U, 0x1e376c08U, 0x2748774cU, 0x34b0bcb5U, 0x391c0cb3U, 0x4ed8aa4aU, 0x5b9cca4fU, 0x682e6ff3U,
    0x748f82eeU, 0x78a5636fU, 0x84c87814U, 0x8cc70208U, 0x90befffaU, 0xa4506cebU, 0xbef9a3f7U, 0xc67178f2U
};

#define ROTR(x, n) rotate((uint)(x), (uint)(32u - (n)))

inline uint bswap32(uint x) {
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

inline void iv(uint s[8]) {
    s[0] = 0x6a09e667u; s[1] = 0xbb67ae85u; s[2] = 0x3c6ef372u; s[3] = 0xa54ff53au;
    s[4] = 0x510e527fu; s[5] = 0x9b05688cu; s[6] = 0x1f83d9abu; s[7] = 0x5be0cd19u;
}

// s = compress(s, w); w is used as the message schedule and overwritten.
static void compress(uint s[8], uint w[16]) {
    uint a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    // Fully unrolled, every w[] index is a constant and the schedule lives in registers.
#pragma unroll
    for (uint i = 0; i < 64; i++) {
        uint wi;
        if (i < 16) {
            wi = w[i];
        } else {
            uint w15 = w[(i + 1) & 15];
            uint w2 = w[(i + 14) & 15];
            uint s0 = ROTR(w15, 7) ^ ROTR(w15, 18) ^ (w15 >> 3);
            uint s1 = ROTR(w2, 17) ^ ROTR(w2, 19) ^ (w2 >> 10);
            wi = w[i & 15] + s0 + w[(i + 9) & 15] + s1;
            w[i & 15] = wi;
        }
        uint t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + wi;
        uint t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    s[0] += a; s[1] += b; s[2] += c; s[3] += d;
    s[4] += e; s[5] += f; s[6] += g; s[7] += h;
}

// d = SHA-256 of the 32-byte message d (state words).
static void sha256_32(uint d[8]) {
    uint w[16];
    for (int k = 0; k < 8; k++) w[k] = d[k];
    w[8] = 0x80000000u;
    for (int k = 9; k < 15; k++) w[k] = 0;
    w[15] = 256;
    iv(d);
    compress(d, w);
}

// l = SHA-256d(l ‖ r): one merkle level.
static void sha256d_64(uint l[8], const uint r[8]) {
    uint w[16];
    for (int k = 0; k < 8; k++) { w[k] = l[k]; w[8 + k] = r[k]; }
    iv(l);
    compress(l, w);
    w[0] = 0x80000000u;
    for (int k = 1; k < 15; k++) w[k] = 0;
    w[15] = 512;
    compress(l, w);
    sha256_32(l);
}

// s = SHA-256d of an 80-byte header from m, the state after its first 64 bytes, and its last 16
// bytes t (4 big-endian words): two compressions.
static void sha256d_80_mid(const uint m[8], const uint t[4], uint s[8]) {
    uint w[16];
    for (int k = 0; k < 8; k++) s[k] = m[k];
    for (int k = 0; k < 4; k++) w[k] = t[k];
    w[4] = 0x80000000u;
    for (int k = 5; k < 15; k++) w[k] = 0;
    w[15] = 640;
    compress(s, w);
    sha256_32(s);
}

// s = SHA-256d of the 80-byte header h (20 big-endian words).
static void sha256d_80(const uint h[20], uint s[8]) {
    uint w[16];
    for (int k = 0; k < 16; k++) w[k] = h[k];
    iv(s);
    compress(s, w);
    for (int k = 0; k < 4; k++) w[k] = h[16 + k];
    w[4] = 0x80000000u;
    for (int k = 5; k < 15; k++) w[k] = 0;
    w[15] = 640;
    compress(s, w);
    sha256_32(s);
}

inline uint job_byte(__global const uint *jobs, uint word_off, uint i) {
    return (jobs[word_off + (i >> 2)] >> ((i & 3) * 8)) & 0xffu;
}

inline uint task_byte(__global const uint *task, uint i) {
    return (task[REC_HEAD_WORDS + (i >> 2)] >> ((i & 3) * 8)) & 0xffu;
}

// hash <= target, the hash read as a little-endian 256-bit integer (limb k = bswap(word k)).
static int meets(const uint hs[8], __global const uint *t) {
    for (int i = 7; i >= 0; i--) {
        uint v = bswap32(hs[i]);
        if (v < t[i]) return 1;
        if (v > t[i]) return 0;
    }
    return 1;
}

static void stratum_header(__global const uint *jobs, __global const uint *task, uint stride,
                           uint h[20]) {
    __global const uint *job = jobs + task[0] * JOB_WORDS;
    // Never past the record, whatever the host wrote.
    uint en_len = min(task[5], (stride - REC_HEAD_WORDS) * 4u);
    uint t1_len = job[17], c2_len = job[18], c1_total = job[19], depth = job[20];
    uint t1_off = job[21], c2_off = job[22], br_off = job[23];

    // The coinbase tail: coinb1 tail ‖ extranonce ‖ coinb2 ‖ 0x80 ‖ zeros ‖ bit length,
    // compressed onto the job's coinb1 midstate block by block.
    uint data_len = t1_len + en_len + c2_len;
    uint nblocks = (data_len + 9 + 63) / 64;
    uint cb_len = c1_total + en_len + c2_len;
    uint s[8];
    for (int k = 0; k < 8; k++) s[k] = job[k];
    for (uint bi = 0; bi < nblocks; bi++) {
        uint w[16];
        for (uint wi = 0; wi < 16; wi++) {
            uint word = 0;
            for (uint j = 0; j < 4; j++) {
                uint p = bi * 64 + wi * 4 + j;
                uint bv = 0;
                if (p < t1_len) bv = job_byte(jobs, t1_off, p);
                else if (p < t1_len + en_len) bv = task_byte(task, p - t1_len);
                else if (p < data_len) bv = job_byte(jobs, c2_off, p - t1_len - en_len);
                else if (p == data_len) bv = 0x80u;
                word = (word << 8) | bv;
            }
            w[wi] = word;
        }
        if (bi + 1 == nblocks) {
            w[14] = cb_len >> 29;
            w[15] = cb_len << 3;
        }
        compress(s, w);
    }
    // txid, then the merkle fold up the branch.
    sha256_32(s);
    for (uint lv = 0; lv < depth; lv++) {
        uint r[8];
        for (int k = 0; k < 8; k++) r[k] = jobs[br_off + lv * 8 + k];
        sha256d_64(s, r);
    }
    h[0] = bswap32(task[2]);
    for (int k = 0; k < 8; k++) {
        h[1 + k] = job[8 + k];
        h[9 + k] = s[k];
    }
    h[17] = bswap32(task[3]);
    h[18] = job[16];
    h[19] = bswap32(task[4]);
}

__kernel void sha256d(__global const uint *jobs,
                      __global const uint *tasks,
                      __global const uint *targets,
                      __global uint *out,
                      const uint n,
                      const uint tag,
                      const uint check,
                      const uint njobs,
                      const uint stride,
                      const uint ntargets) {
    uint idx = (uint)get_global_id(0);
    if (idx >= n) return;
    __global const uint *task = tasks + idx * stride;
    uint hs[8];
    if (task[0] == MID_JOB && stride >= MID_REC_WORDS) {
        // A header share of a run that shares its first 64 bytes: the host hashed them once.
        uint m[8], t[4];
        for (int k = 0; k < 8; k++) m[k] = task[2 + k];
        for (int k = 0; k < 4; k++) t[k] = bswap32(task[10 + k]);
        sha256d_80_mid(m, t, hs);
    } else {
        uint h[20];
        if (task[0] == HEADER_JOB && stride >= HEADER_REC_WORDS) {
            for (int k = 0; k < 20; k++) h[k] = bswap32(task[2 + k]);
        } else if (task[0] < njobs && stride >= REC_HEAD_WORDS) {
            stratum_header(jobs, task, stride, h);
        } else {
            // Refused by the host before upload; a zero header keeps the work item well defined.
            for (int k = 0; k < 20; k++) h[k] = 0;
        }
        sha256d_80(h, hs);
    }
    __global uint *o = out + idx * OUT_WORDS;
    for (int k = 0; k < 8; k++) o[k] = hs[k];
    uint flags = tag << 8;
    // A target index outside the table (never written by the host) leaves both flags clear,
    // which the host's own comparison then reports.
    if (check && task[1] < ntargets) {
        if (meets(hs, targets + task[1] * 16)) flags |= 1u;
        if (meets(hs, targets + task[1] * 16 + 8)) flags |= 2u;
    }
    o[8] = flags;
}

// The device's own ceiling (src/backend/gpu/ceiling.rs): each work item chains `rounds`
// compressions of one block from its own state, no memory traffic in the loop; the block's
// first word takes the state's after each round, so no round can be skipped.
__kernel void ceiling(__global uint *out, const uint rounds) {
    uint idx = (uint)get_global_id(0);
    uint s[8], blk[16], w[16];
    iv(s);
    s[0] ^= idx;
    for (int k = 0; k < 16; k++) blk[k] = idx + (uint)k;
    for (uint r = 0; r < rounds; r++) {
        // compress() uses w as its schedule and overwrites it.
        for (int k = 0; k < 16; k++) w[k] = blk[k];
        compress(s, w);
        blk[0] = s[0];
    }
    for (int k = 0; k < 8; k++) out[idx * 8 + k] = s[k];
}
