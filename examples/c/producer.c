/*
 * A stratum server's side of sharecheck in C: publish a job and a share with librdkafka, in
 * the binary format the sharecheck ABI builds, and read the share's verdict back from a reply
 * route of the server's own.
 *
 * Build (needs librdkafka's headers: `apt-get install librdkafka-dev` on Debian/Ubuntu, and
 * pkg-config):
 *
 *     make -C examples/c            # builds libsharecheck_ffi (cargo build --release) first
 *     make -C examples/c BUILD=debug
 *
 * Run against a node (scripts/demo.sh starts a broker and one; `sharecheck topics create`
 * makes the topics, the replies topic included):
 *
 *     examples/c/producer -b localhost:9092 -r sharecheck.replies -p 0
 *
 * The job is the genesis block's under its own job id (and not clean, so the pool's other
 * jobs stay live), and the share has a fresh extranonce2 each run and a difficulty so low
 * that any hash meets it: its verdict is "accepted". The topic names are the defaults of
 * config/sharecheck.toml.
 */
#define _POSIX_C_SOURCE 200809L

#include <librdkafka/rdkafka.h>
#include <sharecheck.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char GENESIS_COINB1[] =
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04"
    "ffff001d0104";
static const char GENESIS_COINB2[] =
    "65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f"
    "6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe55"
    "48271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de"
    "5c384df7ba0b8d578a4c702b6bf11d5fac00000000";
static const char JOB_ID[] = "c-example";
/* The session's extranonce1: shares are keyed by it, so a session stays on one partition,
 * where its duplicates are tracked. */
static const uint8_t EXTRANONCE1[4] = {0x45, 0x54, 0x68, 0x65};

struct options {
    const char *brokers, *shares, *jobs, *reply_topic;
    int reply_partition;
};

static void fail(const char *what, const char *why) {
    fprintf(stderr, "producer: %s: %s\n", what, why);
    exit(1);
}

static void check(const char *what, int rc) {
    if (rc != SHARECHECK_OK) fail(what, sharecheck_strerror(rc));
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strlen(hex) / 2, i;
    if (n > cap) fail("hex", "too long");
    for (i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) fail("hex", "not hex");
        out[i] = (uint8_t)v;
    }
    return n;
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *brokers) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) != RD_KAFKA_CONF_OK)
        fail("bootstrap.servers", err);
    if (type == RD_KAFKA_CONSUMER) {
        /* librdkafka wants a group id before partitions are assigned by hand; the group is
         * never joined and nothing is committed under it. */
        if (rd_kafka_conf_set(conf, "group.id", "sharecheck-c-example", err, sizeof err) ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err))
            fail("consumer config", err);
    }
    rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk) fail("rd_kafka_new", err);
    return rk;
}

/* Reads the reply route from its current end, fixed before the share is sent, so that the
 * verdict cannot come before the reader's starting point. */
static rd_kafka_t *reply_reader(const struct options *o) {
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, o->brokers);
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(1);
    int64_t low, high;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, o->reply_topic,
                                                             o->reply_partition, &low, &high,
                                                             10000);
    if (e) fail("reply route (does the topic and partition exist?)", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_add(tpl, o->reply_topic, o->reply_partition)->offset = high;
    e = rd_kafka_assign(rk, tpl);
    if (e) fail("assign", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(tpl);
    return rk;
}

/* Produces one message and waits until the broker has it. */
static void produce(rd_kafka_t *rk, const char *topic, const void *key, size_t key_len,
                    const uint8_t *value, size_t len, const char *reply_to) {
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
    rd_kafka_resp_err_t e;
    if (reply_to) rd_kafka_header_add(hdrs, SHARECHECK_HEADER_REPLY_TO, -1, reply_to, -1);
    e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                          RD_KAFKA_V_VALUE((void *)value, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                          RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(hdrs); /* owned by the message only once it is queued */
        fail("produce", rd_kafka_err2str(e));
    }
    if (rd_kafka_flush(rk, 10000)) fail("produce", "not delivered within 10 s");
}

static void publish_job(rd_kafka_t *rk, const struct options *o) {
    static uint8_t coinb1[64], coinb2[256], msg[1024];
    sharecheck_job job;
    size_t len;
    memset(&job, 0, sizeof job);
    job.job_id = JOB_ID;
    job.job_id_len = strlen(JOB_ID);
    job.coinb1 = coinb1;
    job.coinb1_len = unhex(GENESIS_COINB1, coinb1, sizeof coinb1);
    job.coinb2 = coinb2;
    job.coinb2_len = unhex(GENESIS_COINB2, coinb2, sizeof coinb2);
    job.version = 1;
    job.nbits = 0x1d00ffff;
    job.ntime = 0x495fab29;
    job.version_mask = SHARECHECK_DEFAULT_VERSION_MASK;
    job.clean_jobs = 0;
    check("encode job", sharecheck_encode_job(&job, msg, sizeof msg, &len));
    produce(rk, o->jobs, JOB_ID, strlen(JOB_ID), msg, len, NULL);
}

/* Publishes one share; returns its id. */
static uint64_t publish_share(rd_kafka_t *rk, const struct options *o) {
    uint8_t msg[SHARECHECK_SHARE_BATCH_SIZE(1)], extranonce2[4];
    uint32_t fresh = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    uint64_t id = ((uint64_t)fresh << 20) | (uint64_t)(clock() & 0xfffff);
    char reply_to[300];
    sharecheck_share share;
    const uint8_t *key;
    size_t key_len, len;
    memcpy(extranonce2, &fresh, sizeof extranonce2);
    check("share", sharecheck_share_stratum(&share, id, JOB_ID, strlen(JOB_ID), EXTRANONCE1,
                                            sizeof EXTRANONCE1, extranonce2, sizeof extranonce2,
                                            0x495fab29, 0, 0, 0, 1e-12));
    check("encode shares", sharecheck_encode_shares(&share, 1, msg, sizeof msg, &len));
    check("share key", sharecheck_share_key(&share, &key, &key_len));
    snprintf(reply_to, sizeof reply_to, "%s:%d", o->reply_topic, o->reply_partition);
    produce(rk, o->shares, key, key_len, msg, len, reply_to);
    return id;
}

static void print_verdict(const sharecheck_verdict *v) {
    int i;
    printf("verdict for share %llu: %s", (unsigned long long)v->id,
           sharecheck_status_name(v->status));
    if (v->has_hash) {
        printf(", difficulty %g, hash ", v->difficulty);
        for (i = 0; i < 32; i++) printf("%02x", v->hash[i]);
    }
    if (v->status == SHARECHECK_STATUS_MALFORMED) printf(", error code %u", v->error_code);
    printf("\n");
}

/* Reads verdict batches until one holds the verdict of share `id`, for up to 15 s. */
static int await_verdict(rd_kafka_t *rk, uint64_t id) {
    sharecheck_verdict v[256];
    time_t until = time(NULL) + 15;
    while (time(NULL) < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        size_t n = 0, i;
        int rc;
        if (!m) continue;
        if (m->err) {
            fprintf(stderr, "producer: reply route: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        rc = sharecheck_decode_verdicts(m->payload, m->len, v, 256, &n);
        rd_kafka_message_destroy(m);
        if (rc != SHARECHECK_OK) {
            fprintf(stderr, "producer: verdict message skipped: %s\n", sharecheck_strerror(rc));
            continue;
        }
        for (i = 0; i < n; i++) {
            if (v[i].has_id && v[i].id == id) {
                print_verdict(&v[i]);
                return 0;
            }
        }
    }
    fprintf(stderr, "producer: no verdict for share %llu within 15 s\n", (unsigned long long)id);
    return 1;
}

int main(int argc, char **argv) {
    struct options o = {"localhost:9092", "sharecheck.shares", "sharecheck.jobs",
                        "sharecheck.replies", 0};
    rd_kafka_t *producer, *reader;
    uint64_t id;
    int c, rc;
    while ((c = getopt(argc, argv, "b:s:j:r:p:")) != -1) {
        switch (c) {
        case 'b': o.brokers = optarg; break;
        case 's': o.shares = optarg; break;
        case 'j': o.jobs = optarg; break;
        case 'r': o.reply_topic = optarg; break;
        case 'p': o.reply_partition = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: producer [-b brokers] [-s shares_topic] [-j jobs_topic] "
                            "[-r reply_topic] [-p reply_partition]\n");
            return 2;
        }
    }
    if (sharecheck_abi_version() != SHARECHECK_ABI_VERSION)
        fail("libsharecheck_ffi", "built for another version of sharecheck.h");
    reader = reply_reader(&o);
    producer = client(RD_KAFKA_PRODUCER, o.brokers);
    publish_job(producer, &o);
    id = publish_share(producer, &o);
    rc = await_verdict(reader, id);
    rd_kafka_consumer_close(reader);
    rd_kafka_destroy(reader);
    rd_kafka_destroy(producer);
    return rc;
}
