/*
 * The C side of ffi/tests/c_abi.rs: uses include/sharecheck.h as a stratum server would and
 * prints what the Rust test compares with sharecheck's own results.
 *
 *   abi_test encode DIR   writes job1.bin, shares1.bin, ... job4.bin, shares4.bin to DIR (the
 *                         genesis job and shares on it, a clean job with a merkle branch and
 *                         shares on both, an SV2 standard job with SV2 standard and header
 *                         shares, an SV2 extended job with SV2 extended shares, a future
 *                         job before and after its activation) and prints
 *                         each share's Kafka key
 *   abi_test decode FILE  decodes the verdict batch in FILE and prints one line a verdict
 *   abi_test errors       prints the return code of each error path
 *   abi_test layout       prints the sizes and field offsets of the structs
 */
#include "sharecheck.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The genesis coinbase split as coinb1 || extranonce1 || extranonce2 || coinb2
 * (docs/wire-format.md, "Worked example"). */
static const char GENESIS_COINB1[] =
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04"
    "ffff001d0104";
static const char GENESIS_COINB2[] =
    "65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f"
    "6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe55"
    "48271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de"
    "5c384df7ba0b8d578a4c702b6bf11d5fac00000000";
static const char GENESIS_HEADER[] =
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b"
    "12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
static const uint8_t EN1[4] = {0x45, 0x54, 0x68, 0x65};
static const uint8_t EN2[4] = {0x20, 0x54, 0x69, 0x6d};
static const uint8_t EN1_B[4] = {0x08, 0x00, 0x00, 0x02};
static const uint8_t EN2_B[4] = {0x00, 0x00, 0x00, 0x0a};

static void die(const char *what, int rc) {
    fprintf(stderr, "abi_test: %s: %d (%s)\n", what, rc, sharecheck_strerror(rc));
    exit(1);
}

static void check(const char *what, int rc) {
    if (rc != SHARECHECK_OK) die(what, rc);
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strlen(hex) / 2, i;
    if (n > cap) die("hex too long", 0);
    for (i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) die("bad hex", 0);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void print_hex(const uint8_t *b, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) printf("%02x", b[i]);
}

static void write_file(const char *dir, const char *name, const uint8_t *b, size_t n) {
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "abi_test: cannot write %s\n", path);
        exit(1);
    }
}

/* Encodes a job, asking for its size first as a caller with no fixed buffer would. */
static void encode_job(const sharecheck_job *job, const char *dir, const char *name) {
    size_t len = 0;
    uint8_t *buf;
    int rc = sharecheck_encode_job(job, NULL, 0, &len);
    if (rc != SHARECHECK_ERR_BUFFER_TOO_SMALL) die("encode_job size", rc);
    buf = malloc(len);
    check("encode_job", sharecheck_encode_job(job, buf, len, &len));
    write_file(dir, name, buf, len);
    free(buf);
}

static void encode_batch(const sharecheck_share *s, size_t n, const char *dir, const char *name) {
    static uint8_t buf[SHARECHECK_SHARE_BATCH_SIZE(16)];
    size_t len = 0, i;
    if (n > 16) die("batch too long", 0);
    check("encode_shares", sharecheck_encode_shares(s, n, buf, sizeof buf, &len));
    if (len != SHARECHECK_SHARE_BATCH_SIZE(n)) die("batch size", (int)len);
    write_file(dir, name, buf, len);
    for (i = 0; i < n; i++) {
        const uint8_t *key;
        size_t key_len;
        check("share_key", sharecheck_share_key(&s[i], &key, &key_len));
        printf("key %s ", name);
        print_hex(key, key_len);
        printf("\n");
    }
}

static sharecheck_share genesis_share(uint64_t id, const char *job_id, uint32_t ntime,
                                      uint32_t nonce, int has_vb, uint32_t vb, double d) {
    sharecheck_share s;
    check("share_stratum", sharecheck_share_stratum(&s, id, job_id, strlen(job_id), EN1, 4, EN2,
                                                    4, ntime, nonce, has_vb, vb, d));
    return s;
}

static void put32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

/* SV2: job 17 (standard, clean) with standard and header shares, job 18 (extended). */
static void encode_sv2(const char *dir, const sharecheck_job *stratum_job) {
    static const uint8_t PREFIX[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t EXTRANONCE[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    uint8_t msg[SHARECHECK_STANDARD_JOB_SIZE], header[80];
    sharecheck_standard_job sj;
    sharecheck_job ej = *stratum_job;
    sharecheck_share s[8];
    size_t n = 0, len = 0, i;

    memset(&sj, 0, sizeof sj);
    sj.job_id = "17";
    sj.job_id_len = 2;
    for (i = 0; i < 32; i++) {
        sj.prevhash[i] = (uint8_t)(0x20 + i);
        sj.merkle_root[i] = (uint8_t)(0x5a ^ i);
    }
    sj.version = 0x20000000;
    sj.nbits = 0x1d00ffff;
    sj.min_ntime = 0x66a0e2b1;
    sj.version_mask = 0x1fffe000;
    sj.clean_jobs = 1;
    check("encode_standard_job", sharecheck_encode_standard_job(&sj, msg, sizeof msg, &len));
    write_file(dir, "job3.bin", msg, len);

    check("sv2_standard", sharecheck_share_sv2_standard(&s[n++], 13, "17", 2, 0x20000000,
                                                        0x66a0e2b1, 1, 1e-12, NULL)); /* accepted */
    check("sv2_standard", sharecheck_share_sv2_standard(&s[n++], 14, "17", 2, 0x20000000,
                                                        0x66a0e2b1, 1, 1e-12, NULL)); /* duplicate */
    check("sv2_standard", sharecheck_share_sv2_standard(&s[n++], 15, "99", 2, 0x20000000,
                                                        0x66a0e2b1, 1, 1e-12, NULL)); /* unknown_job */
    check("sv2_standard", sharecheck_share_sv2_standard(&s[n++], 16, "17", 2, 0xe0000000u,
                                                        0x66a0e2b1, 1, 1e-12, NULL)); /* bad_version */
    check("sv2_standard", sharecheck_share_sv2_standard(&s[n++], 17, "17", 2, 0x20000000,
                                                        0x66a0e2b1, 2, 65536, NULL)); /* low_difficulty */
    /* The work of share 13 as a header share: the same proof of work, a duplicate. */
    put32(header, sj.version);
    memcpy(header + 4, sj.prevhash, 32);
    memcpy(header + 36, sj.merkle_root, 32);
    put32(header + 68, sj.min_ntime);
    put32(header + 72, sj.nbits);
    put32(header + 76, 1);
    check("share_header", sharecheck_share_header(&s[n++], 18, header, 1e-12, NULL));
    put32(header + 76, 3);
    check("share_header", sharecheck_share_header(&s[n++], 19, header, 1e-12, NULL)); /* accepted */
    encode_batch(s, n, dir, "shares3.bin");

    /* Job 18: an SV2 extended job, the stratum job's coinbase and path on job 17's prev hash. */
    ej.job_id = "18";
    ej.job_id_len = 2;
    memcpy(ej.prevhash, sj.prevhash, 32);
    ej.version_mask = 0x1fffffe0;
    ej.clean_jobs = 0;
    ej.extranonce_size = 16;
    encode_job(&ej, dir, "job4.bin");
    n = 0;
    check("sv2_extended", sharecheck_share_sv2_extended(&s[n++], 20, "18", 2, PREFIX, 8,
                                                        EXTRANONCE, 8, 0x20000000, 0x66a0e2b1, 5,
                                                        1e-12, NULL)); /* accepted */
    check("sv2_extended", sharecheck_share_sv2_extended(&s[n++], 21, "18", 2, PREFIX, 8,
                                                        EXTRANONCE, 7, 0x20000000, 0x66a0e2b1, 5,
                                                        1e-12, NULL)); /* bad extranonce size */
    check("sv2_extended", sharecheck_share_sv2_extended(&s[n++], 22, "18", 2, PREFIX, 8,
                                                        EXTRANONCE, 8, 0x20000000, 0x66a0e2b1, 5,
                                                        1e-12, NULL)); /* duplicate */
    check("sv2_standard", sharecheck_share_sv2_standard(&s[n++], 23, "17", 2, 0x20002000,
                                                        0x66a0e2b1, 9, 1e-12, NULL)); /* accepted */
    encode_batch(s, n, dir, "shares4.bin");

    /* Job 19: announced as a future job, then activated on a new prev hash. */
    sj.job_id = "19";
    sj.future = 1;
    sj.clean_jobs = 0;
    memset(sj.prevhash, 0, 32);
    sj.nbits = 0;
    sj.min_ntime = 0;
    check("encode_standard_job", sharecheck_encode_standard_job(&sj, msg, sizeof msg, &len));
    write_file(dir, "job5.bin", msg, len);
    n = 0;
    check("sv2_standard", sharecheck_share_sv2_standard(&s[n++], 24, "19", 2, 0x20000000,
                                                        0x66a0e2b2, 1, 1e-12, NULL)); /* unknown_job */
    encode_batch(s, n, dir, "shares5.bin");
    for (i = 0; i < 32; i++) header[i] = (uint8_t)(0x40 + i);
    check("encode_activation", sharecheck_encode_activation("19", 2, header, 0x1d00ffff,
                                                            0x66a0e2b2, msg, sizeof msg, &len));
    write_file(dir, "job6.bin", msg, len);
    n = 0;
    check("sv2_standard", sharecheck_share_sv2_standard(&s[n++], 25, "19", 2, 0x20000000,
                                                        0x66a0e2b2, 1, 1e-12, NULL)); /* accepted */
    check("sv2_standard", sharecheck_share_sv2_standard(&s[n++], 26, "17", 2, 0x20000000,
                                                        0x66a0e2b1, 11, 1e-12, NULL)); /* stale */
    encode_batch(s, n, dir, "shares6.bin");
}

static int cmd_encode(const char *dir) {
    static uint8_t coinb1[64], coinb2[256], c1b[60], c2b[70], branch[64], header[80];
    uint8_t en2_long[8], target[32] = {0}, prevhash_stratum[32];
    sharecheck_share s[16];
    sharecheck_job job;
    size_t n = 0, i;

    /* Job 6a: the genesis block's. */
    memset(&job, 0, sizeof job);
    job.job_id = "6a";
    job.job_id_len = 2;
    job.coinb1 = coinb1;
    job.coinb1_len = unhex(GENESIS_COINB1, coinb1, sizeof coinb1);
    job.coinb2 = coinb2;
    job.coinb2_len = unhex(GENESIS_COINB2, coinb2, sizeof coinb2);
    job.version = 1;
    job.nbits = 0x1d00ffff;
    job.ntime = 0x495fab29;
    job.version_mask = SHARECHECK_DEFAULT_VERSION_MASK;
    job.clean_jobs = 1;
    encode_job(&job, dir, "job1.bin");

    s[n++] = genesis_share(1, "6a", 0x495fab29, 0x7c2bac1d, 0, 0, 1.0);          /* block */
    s[n++] = genesis_share(2, "6a", 0x495fab29, 0x7c2bac1d, 0, 0, 1.0);          /* duplicate */
    s[n++] = genesis_share(3, "zz", 0x495fab29, 0x7c2bac1d, 0, 0, 1.0);          /* unknown_job */
    s[n++] = genesis_share(4, "6a", 0x495fab29, 0x7c2bac1d, 1, 0x00002000, 1.0); /* hashed */
    s[n++] = genesis_share(5, "6a", 0x495fab29, 0x7c2bac1d, 1, 0xe0000000u, 1.0); /* bad_version */
    s[n++] = genesis_share(6, "6a", 0x495fab28, 0x7c2bac1d, 0, 0, 1.0);          /* bad_ntime */
    s[n++] = genesis_share(7, "6a", 0x495fab29, 0, 0, 0, 1e-12);                 /* accepted */
    unhex(GENESIS_HEADER, header, sizeof header);
    target[4] = 0xff;
    target[5] = 0xff;
    check("share_header", sharecheck_share_header(&s[n++], 8, header, NAN, target));
    /* The same coinbase with the extranonce all in extranonce2: another session's work. */
    memcpy(en2_long, EN1, 4);
    memcpy(en2_long + 4, EN2, 4);
    check("share_stratum", sharecheck_share_stratum(&s[n++], 9, "6a", 2, NULL, 0, en2_long, 8,
                                                    0x495fab29, 0x7c2bac1d, 0, 0, 1.0));
    encode_batch(s, n, dir, "shares1.bin");

    /* Job 6b: clean, with a merkle branch, a prevhash given in stratum's form and a
     * narrower version mask. */
    for (i = 0; i < 32; i++) prevhash_stratum[i] = (uint8_t)i;
    check("prevhash", sharecheck_prevhash_from_stratum(prevhash_stratum, job.prevhash));
    for (i = 0; i < sizeof c1b; i++) c1b[i] = (uint8_t)(i * 7);
    for (i = 0; i < sizeof c2b; i++) c2b[i] = (uint8_t)(i * 13 + 5);
    for (i = 0; i < 32; i++) {
        branch[i] = 0x11;
        branch[32 + i] = (uint8_t)i;
    }
    job.job_id = "6b";
    job.coinb1 = c1b;
    job.coinb1_len = sizeof c1b;
    job.coinb2 = c2b;
    job.coinb2_len = sizeof c2b;
    job.merkle_branch = branch;
    job.merkle_count = 2;
    job.version = 0x20000000;
    job.ntime = 0x66a0e2b1;
    job.version_mask = 0x00ffe000;
    encode_job(&job, dir, "job2.bin");

    n = 0;
    s[n++] = genesis_share(10, "6a", 0x495fab29, 0x7c2bac1d, 0, 0, 1.0); /* stale */
    check("share_stratum", sharecheck_share_stratum(&s[n++], 11, "6b", 2, EN1_B, 4, EN2_B, 4,
                                                    0x66a0e2b1, 0x1c2d3e4f, 1, 0x00a0e000, 1e-12));
    check("share_stratum", sharecheck_share_stratum(&s[n++], 12, "6b", 2, EN1_B, 4, EN2_B, 4,
                                                    0x66a0e2b1, 0x1c2d3e50, 1, 0x00a0e000, 65536));
    encode_batch(s, n, dir, "shares2.bin");
    encode_sv2(dir, &job);
    return 0;
}

static int cmd_decode(const char *file) {
    static uint8_t msg[1 << 20];
    sharecheck_verdict *v;
    size_t len, count = 0, i;
    FILE *f = fopen(file, "rb");
    int rc;
    if (!f) die("cannot open the verdict file", 0);
    len = fread(msg, 1, sizeof msg, f);
    fclose(f);
    rc = sharecheck_decode_verdicts(msg, len, NULL, 0, &count);
    if (rc != SHARECHECK_ERR_BUFFER_TOO_SMALL && !(rc == SHARECHECK_OK && count == 0))
        die("decode_verdicts count", rc);
    printf("count %lu\n", (unsigned long)count);
    v = calloc(count + 1, sizeof *v);
    check("decode_verdicts", sharecheck_decode_verdicts(msg, len, v, count + 1, &count));
    for (i = 0; i < count; i++) {
        uint64_t bits;
        memcpy(&bits, &v[i].difficulty, sizeof bits);
        printf("id=%llu has_id=%u status=%u(%s) error=%u/%u", (unsigned long long)v[i].id,
               v[i].has_id, v[i].status, sharecheck_status_name(v[i].status), v[i].error_code,
               v[i].error_arg);
        printf(" difficulty=%016llx hash=", (unsigned long long)bits);
        if (v[i].has_hash) print_hex(v[i].hash, 32); else printf("-");
        printf(" header=");
        if (v[i].has_header) print_hex(v[i].header, 80); else printf("-");
        printf(" sv2_error=%s\n", sharecheck_sv2_error(&v[i]) ? sharecheck_sv2_error(&v[i]) : "-");
    }
    free(v);
    return 0;
}

static int stratum_rc(size_t job_id_len, size_t en1_len, size_t en2_len, double d) {
    static const char ids[] = "0123456789abcdef0123456789abcdefX";
    static const uint8_t en[17] = {1};
    return sharecheck_share_stratum(&(sharecheck_share){{0}}, 1, ids, job_id_len, en, en1_len, en,
                                    en2_len, 0, 0, 0, 0, d);
}

static int job_rc(size_t job_id_len, size_t coinb1_len, size_t branch, uint32_t nbits) {
    static uint8_t zeros[32 * 33 + SHARECHECK_MAX_COINB + 1];
    static uint8_t out[SHARECHECK_JOB_MAX_SIZE];
    sharecheck_job j;
    size_t len;
    memset(&j, 0, sizeof j);
    j.job_id = "0123456789abcdef0123456789abcdefX";
    j.job_id_len = job_id_len;
    j.coinb1 = zeros;
    j.coinb1_len = coinb1_len;
    j.merkle_branch = zeros;
    j.merkle_count = branch;
    j.nbits = nbits;
    return sharecheck_encode_job(&j, out, sizeof out, &len);
}

static int cmd_errors(void) {
    sharecheck_share s[2], untouched;
    uint8_t small[100], header[80], zero[32] = {0}, garbage[16] = {0};
    sharecheck_verdict v[1];
    size_t len = 0, count = 99;
    int rc;

    printf("share_job_id_33 %d\n", stratum_rc(33, 4, 4, 1.0));
    printf("share_job_id_0 %d\n", stratum_rc(0, 4, 4, 1.0));
    printf("share_job_id_32 %d\n", stratum_rc(32, 16, 16, 1.0));
    printf("share_extranonce1_17 %d\n", stratum_rc(2, 17, 4, 1.0));
    printf("share_extranonce2_0 %d\n", stratum_rc(2, 4, 0, 1.0));
    printf("share_extranonce2_17 %d\n", stratum_rc(2, 4, 17, 1.0));
    printf("share_nan %d\n", stratum_rc(2, 4, 4, NAN));
    printf("share_infinity %d\n", stratum_rc(2, 4, 4, INFINITY));
    printf("share_zero %d\n", stratum_rc(2, 4, 4, 0.0));
    printf("share_negative %d\n", stratum_rc(2, 4, 4, -1.0));
    printf("share_null_out %d\n",
           sharecheck_share_stratum(NULL, 1, "6a", 2, EN1, 4, EN2, 4, 0, 0, 0, 0, 1.0));
    printf("share_null_extranonce2 %d\n",
           sharecheck_share_stratum(&s[0], 1, "6a", 2, EN1, 4, NULL, 4, 0, 0, 0, 0, 1.0));
    printf("share_job_id_utf8 %d\n",
           sharecheck_share_stratum(&s[0], 1, "\xff", 1, EN1, 4, EN2, 4, 0, 0, 0, 0, 1.0));

    memset(&untouched, 0xaa, sizeof untouched);
    rc = sharecheck_share_stratum(&untouched, 1, "6a", 2, EN1, 4, EN2, 4, 0, 0, 0, 0, NAN);
    printf("failed_share_untouched %d %d\n", rc, untouched.bytes[0] == 0xaa && untouched.bytes[127] == 0xaa);

    unhex(GENESIS_HEADER, header, sizeof header);
    printf("header_zero_target %d\n", sharecheck_share_header(&s[0], 1, header, 1.0, zero));
    printf("header_nan %d\n", sharecheck_share_header(&s[0], 1, header, NAN, NULL));
    header[75] = 0x80; /* nbits with the sign bit: a negative compact target */
    printf("header_bad_nbits %d\n", sharecheck_share_header(&s[0], 1, header, 1.0, NULL));

    check("share_stratum", stratum_rc(2, 4, 4, 1.0));
    s[0] = genesis_share(1, "6a", 0, 0, 0, 0, 1.0);
    s[1] = s[0];
    rc = sharecheck_encode_shares(s, 2, small, sizeof small, &len);
    printf("shares_buffer_too_small %d %lu\n", rc, (unsigned long)len);
    rc = sharecheck_encode_shares(s, 2, NULL, 0, &len);
    printf("shares_size_query %d %lu\n", rc, (unsigned long)len);
    printf("shares_null_len %d\n", sharecheck_encode_shares(s, 2, small, sizeof small, NULL));

    printf("job_id_33 %d\n", job_rc(33, 0, 0, 0x1d00ffff));
    printf("job_coinb1_16385 %d\n", job_rc(2, SHARECHECK_MAX_COINB + 1, 0, 0x1d00ffff));
    printf("job_branch_33 %d\n", job_rc(2, 0, 33, 0x1d00ffff));
    printf("job_nbits_0 %d\n", job_rc(2, 0, 0, 0));
    printf("job_ok %d\n", job_rc(2, SHARECHECK_MAX_COINB, 32, 0x1d00ffff));
    printf("job_null %d\n", sharecheck_encode_job(NULL, small, sizeof small, &len));
    {
        static const uint8_t en[33] = {0};
        sharecheck_standard_job sj;
        uint8_t msg[SHARECHECK_STANDARD_JOB_SIZE];
        printf("sv2_extranonce_33 %d\n",
               sharecheck_share_sv2_extended(&s[0], 1, "18", 2, en, 16, en, 17, 0, 0, 0, 1.0, NULL));
        printf("sv2_extranonce_32 %d\n",
               sharecheck_share_sv2_extended(&s[0], 1, "18", 2, en, 16, en, 16, 0, 0, 0, 1.0, NULL));
        printf("sv2_standard_zero_target %d\n",
               sharecheck_share_sv2_standard(&s[0], 1, "17", 2, 0, 0, 0, 1.0, zero));
        printf("sv2_standard_job_id_0 %d\n",
               sharecheck_share_sv2_standard(&s[0], 1, "17", 0, 0, 0, 0, 1.0, NULL));
        memset(&sj, 0, sizeof sj);
        sj.job_id = "17";
        sj.job_id_len = 2;
        printf("standard_job_nbits_0 %d\n",
               sharecheck_encode_standard_job(&sj, msg, sizeof msg, &len));
        sj.nbits = 0x1d00ffff;
        rc = sharecheck_encode_standard_job(&sj, msg, 10, &len);
        printf("standard_job_too_small %d %lu\n", rc, (unsigned long)len);
        printf("sv2_error_null %d\n", sharecheck_sv2_error(NULL) == NULL);
        printf("activation_nbits_0 %d\n",
               sharecheck_encode_activation("19", 2, zero, 0, 0, msg, sizeof msg, &len));
        rc = sharecheck_encode_activation("19", 2, zero, 0x1d00ffff, 0, msg, 10, &len);
        printf("activation_too_small %d %lu\n", rc, (unsigned long)len);
    }

    rc = sharecheck_decode_verdicts(garbage, sizeof garbage, v, 1, &count);
    printf("decode_garbage %d %lu\n", rc, (unsigned long)count);
    printf("decode_null_count %d\n", sharecheck_decode_verdicts(garbage, 16, v, 1, NULL));

    printf("strerror_too_small %s\n", sharecheck_strerror(SHARECHECK_ERR_BUFFER_TOO_SMALL));
    printf("strerror_unknown %s\n", sharecheck_strerror(12345));
    printf("status_name_block %s\n", sharecheck_status_name(SHARECHECK_STATUS_BLOCK));
    printf("status_name_9 %s\n", sharecheck_status_name(9));
    printf("abi_version %d\n", sharecheck_abi_version() == SHARECHECK_ABI_VERSION);
    return 0;
}

#define FIELD(type, field) printf(#type "." #field " %lu\n", (unsigned long)offsetof(type, field))

static int cmd_layout(void) {
    printf("sizeof sharecheck_share %lu\n", (unsigned long)sizeof(sharecheck_share));
    printf("sizeof sharecheck_verdict %lu\n", (unsigned long)sizeof(sharecheck_verdict));
    printf("sizeof sharecheck_job %lu\n", (unsigned long)sizeof(sharecheck_job));
    FIELD(sharecheck_verdict, id);
    FIELD(sharecheck_verdict, has_id);
    FIELD(sharecheck_verdict, status);
    FIELD(sharecheck_verdict, has_hash);
    FIELD(sharecheck_verdict, has_header);
    FIELD(sharecheck_verdict, error_code);
    FIELD(sharecheck_verdict, error_arg);
    FIELD(sharecheck_verdict, difficulty);
    FIELD(sharecheck_verdict, hash);
    FIELD(sharecheck_verdict, header);
    FIELD(sharecheck_job, job_id);
    FIELD(sharecheck_job, job_id_len);
    FIELD(sharecheck_job, prevhash);
    FIELD(sharecheck_job, coinb1);
    FIELD(sharecheck_job, coinb1_len);
    FIELD(sharecheck_job, coinb2);
    FIELD(sharecheck_job, coinb2_len);
    FIELD(sharecheck_job, merkle_branch);
    FIELD(sharecheck_job, merkle_count);
    FIELD(sharecheck_job, version);
    FIELD(sharecheck_job, nbits);
    FIELD(sharecheck_job, ntime);
    FIELD(sharecheck_job, version_mask);
    FIELD(sharecheck_job, clean_jobs);
    FIELD(sharecheck_job, extranonce_size);
    printf("sizeof sharecheck_standard_job %lu\n", (unsigned long)sizeof(sharecheck_standard_job));
    FIELD(sharecheck_standard_job, job_id);
    FIELD(sharecheck_standard_job, job_id_len);
    FIELD(sharecheck_standard_job, prevhash);
    FIELD(sharecheck_standard_job, merkle_root);
    FIELD(sharecheck_standard_job, version);
    FIELD(sharecheck_standard_job, nbits);
    FIELD(sharecheck_standard_job, min_ntime);
    FIELD(sharecheck_standard_job, version_mask);
    FIELD(sharecheck_standard_job, clean_jobs);
    FIELD(sharecheck_standard_job, future);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "encode") == 0) return cmd_encode(argv[2]);
    if (argc == 3 && strcmp(argv[1], "decode") == 0) return cmd_decode(argv[2]);
    if (argc == 2 && strcmp(argv[1], "errors") == 0) return cmd_errors();
    if (argc == 2 && strcmp(argv[1], "layout") == 0) return cmd_layout();
    fprintf(stderr, "usage: abi_test encode DIR | decode FILE | errors | layout\n");
    return 2;
}
