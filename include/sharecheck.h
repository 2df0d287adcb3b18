/*
 * sharecheck.h: the C ABI of sharecheck, for stratum servers written in C or C++.
 *
 * A stratum server publishes share batches and job messages to Kafka and reads verdict
 * batches back, all in the binary wire format of docs/wire-format.md; this library builds and
 * reads those bytes with the code the validator nodes run, so the two cannot disagree. Kafka
 * is not in here: publish the bytes with the librdkafka the server already links
 * (examples/c/producer.c).
 *
 *   1. For each mining.notify, build a job message (sharecheck_encode_job) and produce it to
 *      the jobs topic, keyed by its job_id.
 *   2. For each mining.submit, fill a share record (sharecheck_share_stratum), frame one or
 *      more records of one session into a share batch (sharecheck_encode_shares) and produce
 *      it to the shares topic, keyed by the session's extranonce1 (sharecheck_share_key):
 *      duplicates are tracked per partition, so a session's shares must stay on one. Give
 *      the message the Kafka header SHARECHECK_HEADER_REPLY_TO to have its verdicts sent to a
 *      topic (and partition) of the server's own.
 *   3. Read verdict batches from there and decode them (sharecheck_decode_verdicts); each
 *      verdict carries the id of its share. A block verdict carries the header to submit.
 *
 * Stratum V2 front ends do the same with their messages: NewExtendedMiningJob is a
 * sharecheck_job (coinb1 = coinbase_tx_prefix, coinb2 = coinbase_tx_suffix, merkle_branch =
 * merkle_path, ntime = min_ntime, version_mask 0x1fffffe0 when version rolling is allowed, else
 * 0, extranonce_size = the channel's extranonce_prefix length + its rollable extranonce
 * size), SubmitSharesExtended a sharecheck_share_sv2_extended record; NewMiningJob with the
 * SetNewPrevHash that activates it is a sharecheck_standard_job
 * (sharecheck_encode_standard_job), SubmitSharesStandard a sharecheck_share_sv2_standard
 * record. A future job goes out as it comes (sharecheck_standard_job with future set) and
 * its SetNewPrevHash as an activation (sharecheck_encode_activation); a new prev hash makes
 * the jobs of the old one stale. sharecheck_sv2_error gives the SubmitShares.Error
 * code that answers a verdict (NULL: count it in SubmitShares.Success). SV2 job ids are
 * integers; write their decimal.
 *
 * Conventions. Every function returns SHARECHECK_OK (0) or a negative SHARECHECK_ERR_* code
 * (sharecheck_strerror gives its message) and never unwinds into the caller: a bug inside is
 * SHARECHECK_ERR_INTERNAL. Outputs are written only on success, except the size a too-small
 * buffer reports. A pointer paired with a length may be NULL when the length is 0. Every
 * function is safe to call from any number of threads at once. Integers in the structs are
 * host order; the library writes the little-endian wire format itself.
 *
 * Linking. Prefer the shared library (libsharecheck_ffi.so, -lsharecheck_ffi): it exports the
 * functions below and nothing of the Kafka client compiled into sharecheck. The static library
 * (libsharecheck_ffi.a) carries all of sharecheck's dependencies, librdkafka among them, with
 * their symbols global; a program that also links its own librdkafka may get either copy.
 * Static linking needs the system libraries that `cargo rustc -p sharecheck-ffi --lib
 * --crate-type staticlib -- --print native-static-libs` lists (e.g. -lz -lssl -lcrypto -ldl
 * -lpthread -lm -lrt -lutil).
 */
#ifndef SHARECHECK_H
#define SHARECHECK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes; compare with sharecheck_abi_version() at start. */
#define SHARECHECK_ABI_VERSION 2

/*
 * Kafka header of a share message naming where its verdicts go: the value is "TOPIC" or
 * "TOPIC:PARTITION" (the node writes only to the replies topic of its config, or to a topic
 * named after it and a dot, and only to an existing partition; a route it refuses sends the
 * verdicts to the verdicts topic with a "reply_refused" header instead).
 */
#define SHARECHECK_HEADER_REPLY_TO "reply_to"

/* Return codes. */
#define SHARECHECK_OK 0
#define SHARECHECK_ERR_NULL (-1)              /* a required pointer is NULL */
#define SHARECHECK_ERR_BUFFER_TOO_SMALL (-2)  /* the needed size was stored */
#define SHARECHECK_ERR_JOB_ID_LENGTH (-3)     /* job_id not 1 to 32 bytes */
#define SHARECHECK_ERR_JOB_ID_UTF8 (-4)       /* job_id not valid UTF-8 */
#define SHARECHECK_ERR_EXTRANONCE1_LENGTH (-5) /* extranonce1 over 16 bytes */
#define SHARECHECK_ERR_EXTRANONCE2_LENGTH (-6) /* extranonce2 not 1 to 16 bytes */
#define SHARECHECK_ERR_DIFFICULTY (-7)        /* difficulty not a finite number > 0 */
#define SHARECHECK_ERR_ZERO_TARGET (-8)       /* explicit target of zero */
#define SHARECHECK_ERR_HEADER_NBITS (-9)      /* a header share's nbits is no valid target */
#define SHARECHECK_ERR_COINBASE_LENGTH (-10)  /* coinb1 or coinb2 over 16384 bytes */
#define SHARECHECK_ERR_BRANCH_LENGTH (-11)    /* merkle branch over 32 entries */
#define SHARECHECK_ERR_NBITS (-12)            /* a job's nbits is no valid non-zero target */
#define SHARECHECK_ERR_TOO_LARGE (-13)        /* count or length too large */
#define SHARECHECK_ERR_DECODE (-14)           /* not a valid verdict batch */
#define SHARECHECK_ERR_INTERNAL (-15)         /* a bug in sharecheck */
#define SHARECHECK_ERR_SV2_EXTRANONCE_LENGTH (-16) /* extranonce_prefix + extranonce over 32 bytes */

/* Verdict statuses (docs/wire-format.md; codes are never renumbered). */
#define SHARECHECK_STATUS_ACCEPTED 0
#define SHARECHECK_STATUS_BLOCK 1
#define SHARECHECK_STATUS_LOW_DIFFICULTY 2
#define SHARECHECK_STATUS_DUPLICATE 3
#define SHARECHECK_STATUS_STALE 4
#define SHARECHECK_STATUS_UNKNOWN_JOB 5
#define SHARECHECK_STATUS_BAD_NTIME 6
#define SHARECHECK_STATUS_BAD_VERSION 7
#define SHARECHECK_STATUS_MALFORMED 8

/* Limits of the format. */
#define SHARECHECK_MAX_JOB_ID 32
#define SHARECHECK_MAX_EXTRANONCE1 16
#define SHARECHECK_MAX_EXTRANONCE2 16
#define SHARECHECK_MAX_COINB 16384
#define SHARECHECK_MAX_BRANCH 32
/* An SV2 extended share's extranonce_prefix and extranonce together. */
#define SHARECHECK_MAX_SV2_EXTRANONCE 32
/* BIP310's default version-rolling mask. */
#define SHARECHECK_DEFAULT_VERSION_MASK 0x1fffe000u
/* Size of a share batch of n records: the 16-byte batch header, then 128 bytes a record. */
#define SHARECHECK_SHARE_BATCH_SIZE(n) (16 + 128 * (size_t)(n))
/* The largest job message (two full coinbase halves and a full branch). */
#define SHARECHECK_JOB_MAX_SIZE (16 + 88 + 2 * SHARECHECK_MAX_COINB + 32 * SHARECHECK_MAX_BRANCH)
/* The size of a standard job's message (the fixed part and its merkle root). */
#define SHARECHECK_STANDARD_JOB_SIZE (16 + 88 + 32)
/* The size of an activation's message (SetNewPrevHash; the fixed part only). */
#define SHARECHECK_ACTIVATION_SIZE (16 + 88)

/*
 * One share record, 128 bytes exactly as it travels (docs/wire-format.md, "Share record");
 * opaque: fill it with sharecheck_share_stratum, _header, _sv2_standard or _sv2_extended.
 * Alignment 1, so
 * records may sit anywhere, e.g. straight in a message buffer after a 16-byte header.
 */
typedef struct sharecheck_share {
    uint8_t bytes[128];
} sharecheck_share;

/*
 * A job's fields: mining.notify's, decoded from hex. The pointers are read only during
 * sharecheck_encode_job.
 */
typedef struct sharecheck_job {
    const char *job_id; /* 1 to 32 bytes of UTF-8, not NUL-terminated */
    size_t job_id_len;
    /* Previous block hash in header byte order, as in the block header. mining.notify sends
     * it with each 4-byte word byte-swapped: convert with sharecheck_prevhash_from_stratum. */
    uint8_t prevhash[32];
    const uint8_t *coinb1; /* coinbase = coinb1 || extranonce1 || extranonce2 || coinb2 */
    size_t coinb1_len;     /* at most 16384 */
    const uint8_t *coinb2;
    size_t coinb2_len; /* at most 16384 */
    /* merkle_count hashes of 32 bytes, back to back, in internal byte order (as stratum's
     * hex decodes); at most 32. */
    const uint8_t *merkle_branch;
    size_t merkle_count;
    uint32_t version;      /* the values stratum sends as 8 hex digits */
    uint32_t nbits;
    uint32_t ntime;
    uint32_t version_mask; /* BIP310 mask; SHARECHECK_DEFAULT_VERSION_MASK if none was set */
    uint8_t clean_jobs;    /* non-zero: every earlier job is stale */
    /* bytes of extranonce1 + extranonce2 the coinbase reserves, 1 to 32 (shares of another
     * length are malformed); 0: not stated, any length */
    uint8_t extranonce_size;
} sharecheck_job;

/*
 * An SV2 standard job: NewMiningJob's job id, merkle root and version, with the prev hash,
 * nbits and min_ntime of the SetNewPrevHash that activates it. job_id is read only during
 * sharecheck_encode_standard_job.
 */
typedef struct sharecheck_standard_job {
    const char *job_id; /* 1 to 32 bytes of UTF-8 (SV2: the job id's decimal) */
    size_t job_id_len;
    uint8_t prevhash[32];    /* header byte order, as in the block header */
    uint8_t merkle_root[32]; /* header byte order */
    uint32_t version;
    uint32_t nbits;
    uint32_t min_ntime;    /* a share's ntime may not be lower */
    uint32_t version_mask; /* the version bits a share may change; 0: none */
    uint8_t clean_jobs;    /* non-zero: every earlier job of another prevhash is stale */
    /* non-zero: a future job (NewMiningJob without min_ntime): prevhash, nbits and min_ntime
     * are not read; the job is live once its activation (sharecheck_encode_activation)
     * follows on the jobs topic */
    uint8_t future;
} sharecheck_standard_job;

/* One decoded verdict, 136 bytes. */
typedef struct sharecheck_verdict {
    uint64_t id;         /* the share's id, when has_id (0 otherwise) */
    uint8_t has_id;      /* 0 when the share had no usable id */
    uint8_t status;      /* SHARECHECK_STATUS_* */
    uint8_t has_hash;    /* hash and difficulty are set (the share was hashed) */
    uint8_t has_header;  /* header is set (status block) */
    uint16_t error_code; /* status malformed: record error code of docs/wire-format.md, or 0 */
    uint8_t error_arg;   /* its argument (e.g. the offending length) */
    uint8_t reserved;
    double difficulty;   /* achieved difficulty, diff1 / hash */
    uint8_t hash[32];    /* block-explorer order (the digest byte-reversed), as in JSON */
    uint8_t header[80];  /* the block header to submit to the network */
} sharecheck_verdict;

/* The library's SHARECHECK_ABI_VERSION. */
uint32_t sharecheck_abi_version(void);

/* A static message for any return code; never NULL. */
const char *sharecheck_strerror(int code);

/* A status code's name as in JSON verdicts ("accepted", "low_difficulty", ...), "unknown" for
 * a code that is none; static, never NULL. */
const char *sharecheck_status_name(int status);

/*
 * Fills *out with a stratum share: mining.submit's fields plus the session's extranonce1 and
 * difficulty. ntime, nonce and version_bits are the values stratum sends as 8 hex digits;
 * version_bits is used when has_version_bits is non-zero. The share target is
 * floor(diff1 / difficulty), computed exactly by the validator.
 * Errors: SHARECHECK_ERR_NULL, _JOB_ID_LENGTH, _JOB_ID_UTF8, _EXTRANONCE1_LENGTH,
 * _EXTRANONCE2_LENGTH, _DIFFICULTY.
 */
int sharecheck_share_stratum(sharecheck_share *out, uint64_t id,
                             const char *job_id, size_t job_id_len,
                             const uint8_t *extranonce1, size_t extranonce1_len,
                             const uint8_t *extranonce2, size_t extranonce2_len,
                             uint32_t ntime, uint32_t nonce,
                             int has_version_bits, uint32_t version_bits,
                             double difficulty);

/*
 * Fills *out with a header share: the 80 header bytes as hashed, and the share target as
 * target (32 bytes, big-endian, not zero) or, when target is NULL, as difficulty.
 * Errors: SHARECHECK_ERR_NULL, _DIFFICULTY, _ZERO_TARGET, _HEADER_NBITS.
 */
int sharecheck_share_header(sharecheck_share *out, uint64_t id, const uint8_t header[80],
                            double difficulty, const uint8_t *target);

/*
 * Fills *out with an SV2 standard share (SubmitSharesStandard): the job id's decimal, the
 * full block version, ntime and nonce, and the channel's target (SetTarget's maximum_target
 * as 32 big-endian bytes, not zero) or, when target is NULL, a difficulty.
 * Errors: SHARECHECK_ERR_NULL, _JOB_ID_LENGTH, _JOB_ID_UTF8, _DIFFICULTY, _ZERO_TARGET.
 */
int sharecheck_share_sv2_standard(sharecheck_share *out, uint64_t id,
                                  const char *job_id, size_t job_id_len,
                                  uint32_t version, uint32_t ntime, uint32_t nonce,
                                  double difficulty, const uint8_t *target);

/*
 * Fills *out with an SV2 extended share (SubmitSharesExtended): the channel's
 * extranonce_prefix and the share's extranonce (at most SHARECHECK_MAX_SV2_EXTRANONCE bytes
 * together), the full version, ntime and nonce, and the target as for the standard share.
 * Errors: as sharecheck_share_sv2_standard, and _SV2_EXTRANONCE_LENGTH.
 */
int sharecheck_share_sv2_extended(sharecheck_share *out, uint64_t id,
                                  const char *job_id, size_t job_id_len,
                                  const uint8_t *extranonce_prefix, size_t extranonce_prefix_len,
                                  const uint8_t *extranonce, size_t extranonce_len,
                                  uint32_t version, uint32_t ntime, uint32_t nonce,
                                  double difficulty, const uint8_t *target);

/*
 * The Kafka key for a share message holding *share: a stratum share's extranonce1 (empty when
 * it is), an SV2 extended share's extranonce_prefix (its channel), a header share's and an SV2
 * standard share's nonce low byte (so that a header share and a standard share of the same
 * work land in one partition, where duplicates are found). *key points into *share.
 */
int sharecheck_share_key(const sharecheck_share *share, const uint8_t **key, size_t *key_len);

/*
 * Writes a share batch of count records to out. *out_len gets the batch's size,
 * SHARECHECK_SHARE_BATCH_SIZE(count), also when out_cap is smaller
 * (SHARECHECK_ERR_BUFFER_TOO_SMALL, and out may then be NULL: ask for the size that way).
 * All records of one message should be of one session (one key).
 */
int sharecheck_encode_shares(const sharecheck_share *records, size_t count,
                             uint8_t *out, size_t out_cap, size_t *out_len);

/*
 * Writes the job message of *job to out (at most SHARECHECK_JOB_MAX_SIZE bytes). *out_len gets
 * its size, also when out_cap is smaller (SHARECHECK_ERR_BUFFER_TOO_SMALL). A job the
 * validator would refuse is refused: SHARECHECK_ERR_NULL, _JOB_ID_LENGTH, _JOB_ID_UTF8,
 * _COINBASE_LENGTH, _BRANCH_LENGTH, _NBITS.
 */
int sharecheck_encode_job(const sharecheck_job *job, uint8_t *out, size_t out_cap,
                          size_t *out_len);

/*
 * Writes the job message of *job to out (SHARECHECK_STANDARD_JOB_SIZE bytes). *out_len gets
 * its size, also when out_cap is smaller (SHARECHECK_ERR_BUFFER_TOO_SMALL). A job the
 * validator would refuse is refused: SHARECHECK_ERR_NULL, _JOB_ID_LENGTH, _JOB_ID_UTF8, _NBITS.
 */
int sharecheck_encode_standard_job(const sharecheck_standard_job *job, uint8_t *out,
                                   size_t out_cap, size_t *out_len);

/*
 * Writes the job message that activates the future job job_id (SV2 SetNewPrevHash: the prev
 * hash in header byte order, nbits, min_ntime) to out (SHARECHECK_ACTIVATION_SIZE bytes),
 * produced to the jobs topic keyed by job_id after the future job. The job becomes live and
 * clean: the jobs of another prevhash are stale. *out_len gets its size, also when out_cap is
 * smaller (SHARECHECK_ERR_BUFFER_TOO_SMALL). Errors: SHARECHECK_ERR_NULL, _JOB_ID_LENGTH,
 * _JOB_ID_UTF8, _NBITS.
 */
int sharecheck_encode_activation(const char *job_id, size_t job_id_len,
                                 const uint8_t prevhash[32], uint32_t nbits, uint32_t min_ntime,
                                 uint8_t *out, size_t out_cap, size_t *out_len);

/* Converts a prevhash from stratum's word-swapped form to header byte order; the two may be
 * the same buffer. */
int sharecheck_prevhash_from_stratum(const uint8_t stratum[32], uint8_t header_order[32]);

/*
 * Decodes the verdict batch msg[0..len) (compact or full records) into out[0..*count).
 * *count gets the batch's number of verdicts, also when it exceeds out_cap
 * (SHARECHECK_ERR_BUFFER_TOO_SMALL; out may then be NULL). A message that is not a valid
 * verdict batch is SHARECHECK_ERR_DECODE, with *count 0.
 */
int sharecheck_decode_verdicts(const uint8_t *msg, size_t len, sharecheck_verdict *out,
                               size_t out_cap, size_t *count);

/*
 * The Stratum V2 SubmitShares.Error code that answers *verdict ("difficulty-too-low",
 * "duplicate-share", "stale-share", "invalid-job-id", "invalid-share",
 * "version-rolling-not-allowed", "invalid-non-rollable-version-bit", "bad-extranonce-size"),
 * static; NULL for a share to count in SubmitShares.Success (accepted, block), for an unknown
 * status and for a NULL verdict.
 */
const char *sharecheck_sv2_error(const sharecheck_verdict *verdict);

#ifdef __cplusplus
}
#endif

#endif /* SHARECHECK_H */
