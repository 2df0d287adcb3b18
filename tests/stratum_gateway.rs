//! The Stratum V1 gateway against a real broker and a real node, each its own process:
//! miners (sharecheck's own, hashing with the sha2 crate) get the node's verdicts as
//! mining.submit replies with the de-facto codes, two gateways each read only their own
//! verdicts, routes the node must not write to are refused, and a node killed -9 mid-run
//! leaves no submit unanswered or answered twice.

mod kafka_support;
use kafka_support::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::json;
use sharecheck::model::Job;
use sharecheck::stratum::miner::Miner;
use sharecheck::wire::binary::{decode_verdicts, encode_job, encode_shares, ShareRecord};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// 2^-24: one hash in 256 meets it, so the miner finds shares at once and misses easily.
const DIFFICULTY: f64 = 5.960464477539063e-8;

fn env(test: &str, extra: &str) -> Env {
    Env::new(
        test,
        &format!(
            "[stratum]\nstart_difficulty = {DIFFICULTY:e}\nmin_difficulty = 1e-12\n\
             shares_per_minute = 0.0\nverdict_timeout_ms = 4000\nmetrics_listen = \"\"\n{extra}"
        ),
    )
}

fn job(id: &str, prev: u8) -> Job {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    Job {
        job_id: id.into(),
        prevhash: [prev; 32],
        coinb1: vec![1; 42],
        coinb2: vec![2; 40],
        merkle_branch: vec![[7; 32], [8; 32]],
        version: 0x2000_0000,
        // Far above any share here: no block candidates.
        nbits: 0x1d00_ffff,
        ntime: now,
        clean_jobs: true,
        version_mask: 0x1fff_e000,
        // What the gateway's sessions fill: jobs.extranonce1_size + extranonce2_size.
        extranonce_size: Some(8),
        merkle_root: None,
        step: Default::default(),
    }
}

fn producer(env: &Env) -> BaseProducer {
    env.client_config().create().unwrap()
}

fn publish(env: &Env, j: &Job) {
    let p = producer(env);
    p.send(
        BaseRecord::to(&env.topic("jobs"))
            .key(j.job_id.as_bytes())
            .payload(&encode_job(j)),
    )
    .unwrap();
    p.flush(Duration::from_secs(10)).unwrap();
}

/// A gateway of the env on a port of its own; returns once it accepts connections.
fn gateway(env: &Env, instance: u8, log: &str) -> (Proc, String) {
    gateway_with(env, instance, log, &[])
}

fn gateway_with(env: &Env, instance: u8, log: &str, extra: &[&str]) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let instance = instance.to_string();
    let args = [
        &["stratum", "--listen", &addr, "--instance", &instance][..],
        extra,
    ]
    .concat();
    let mut p = env.spawn(&args, log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(p.wait_for(Duration::ZERO).is_none(), "{}", p.log_text());
        assert!(
            Instant::now() < deadline,
            "gateway not listening: {}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (p, addr)
}

async fn miner(addr: &str, worker: &str) -> Miner {
    let mut m = Miner::connect(addr).await.unwrap();
    m.subscribe().await.unwrap();
    let r = m.call("mining.authorize", json!([worker, "x"])).await;
    assert_eq!(r.unwrap(), Ok(json!(true)));
    m.wait_job(None, Duration::from_secs(30)).await.unwrap();
    m
}

/// The reply's error code, or 0 for `true`.
fn code(r: &Result<serde_json::Value, (i64, String)>) -> i64 {
    match r {
        Ok(v) => {
            assert_eq!(v, &json!(true));
            0
        }
        Err((c, _)) => *c,
    }
}

/// Verdict messages of one partition of `topic` until `want` verdicts or `limit`: each
/// message's verdict ids.
fn verdicts_in(env: &Env, topic: &str, partition: i32, want: usize, limit: Duration) -> usize {
    let c: BaseConsumer = env
        .client_config()
        .set("group.id", format!("{}.check", env.name))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + limit;
    let mut n = 0;
    while n < want && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            n += decode_verdicts(m.payload().unwrap_or(&[])).unwrap().len();
        }
    }
    n
}

/// Runs an async test body (the env is made and dropped outside it: dropping one deletes
/// its topics, which blocks).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn miners_get_the_nodes_verdicts_and_gateways_only_their_own() {
    let env = env("stratum", "");
    block_on(session_codes(&env));
}

async fn session_codes(env: &Env) {
    let _node = env.node("node.log");
    publish(env, &job("j1", 1));
    let metrics_port = free_port();
    let metrics_at = format!("127.0.0.1:{metrics_port}");
    let (_ga, a) = gateway_with(env, 1, "gw1.log", &["--metrics-listen", &metrics_at]);
    let (_gb, b) = gateway(env, 2, "gw2.log");

    // Submits before subscribing and before authorizing.
    let mut raw = Miner::connect(&a).await.unwrap();
    let r = raw.call(
        "mining.submit",
        json!(["w", "j1", "00000000", "00000000", "00000000"]),
    );
    assert_eq!(code(&r.await.unwrap()), 25);
    raw.subscribe().await.unwrap();
    let r = raw.call(
        "mining.submit",
        json!(["w", "j1", "00000000", "00000000", "00000000"]),
    );
    assert_eq!(code(&r.await.unwrap()), 24);

    let mut m = miner(&a, "alice.rig1").await;
    assert_eq!(m.extranonce1.len(), 4);
    assert_eq!(m.extranonce1[0], 1, "gateway 1's extranonce1s start with 1");
    assert_eq!(m.extranonce2_size, 4);
    assert_eq!(m.difficulty, DIFFICULTY);
    assert_ne!(
        raw.extranonce1, m.extranonce1,
        "two sessions, two extranonce1s"
    );
    let mut to_node_a = 0;

    let good = m.find(0, true, None).unwrap();
    let submit = |f: &sharecheck::stratum::miner::Found| f.params("alice.rig1");
    assert_eq!(
        code(&m.call("mining.submit", submit(&good)).await.unwrap()),
        0
    );
    assert_eq!(
        code(&m.call("mining.submit", submit(&good)).await.unwrap()),
        22
    );
    let low = m.find(1, false, None).unwrap();
    assert_eq!(
        code(&m.call("mining.submit", submit(&low)).await.unwrap()),
        23
    );
    let mut unknown = m.find(2, true, None).unwrap();
    unknown.job_id = "nope".into();
    assert_eq!(
        code(&m.call("mining.submit", submit(&unknown)).await.unwrap()),
        21
    );
    to_node_a += 4;

    // Garbage, a bad hex field and an over-long line: error replies, and the session goes on.
    m.send_line("hello, pool").await.unwrap();
    let (id, r) = loop {
        if let Some(x) = m.read_response().await.unwrap() {
            break x;
        }
    };
    assert_eq!((id, code(&r)), (0, 20));
    m.send_line(&"x".repeat(10_000)).await.unwrap();
    let (_, r) = loop {
        if let Some(x) = m.read_response().await.unwrap() {
            break x;
        }
    };
    assert_eq!(code(&r), 20);
    let mut bad_hex = submit(&m.find(3, true, None).unwrap());
    bad_hex[2] = json!("zzzzzzzz");
    assert_eq!(code(&m.call("mining.submit", bad_hex).await.unwrap()), 20);
    let good = m.find(4, true, None).unwrap();
    assert_eq!(
        code(&m.call("mining.submit", submit(&good)).await.unwrap()),
        0
    );
    to_node_a += 1;

    // Version rolling: granted within the jobs' mask; bits outside it are refused.
    let r = m
        .call(
            "mining.configure",
            json!([["version-rolling"], {"version-rolling.mask": "ffffffff"}]),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["version-rolling.mask"], json!("1fffe000"));
    let rolled = m.find(5, true, Some(0x0000_e000)).unwrap();
    assert_eq!(
        code(&m.call("mining.submit", submit(&rolled)).await.unwrap()),
        0
    );
    let mut outside = submit(&m.find(6, true, None).unwrap());
    outside.as_array_mut().unwrap().push(json!("e0000000"));
    assert_eq!(code(&m.call("mining.submit", outside).await.unwrap()), 20);
    to_node_a += 1;

    // A new clean job: a share on the old one is stale, one on the new one counts.
    let old = m.find(7, true, None).unwrap();
    let seen = m.notifies;
    // A job for other extranonce sizes is not announced (its shares would be malformed).
    let mut other = job("wrong-size", 9);
    other.extranonce_size = Some(12);
    publish(env, &other);
    publish(env, &job("j2", 2));
    m.wait_job(Some(seen), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(m.job.as_ref().unwrap().job_id, "j2");
    assert_eq!(
        code(&m.call("mining.submit", submit(&old)).await.unwrap()),
        21
    );
    let new = m.find(8, true, None).unwrap();
    assert_eq!(
        code(&m.call("mining.submit", submit(&new)).await.unwrap()),
        0
    );
    to_node_a += 2;

    // The second gateway's miner.
    let mut mb = miner(&b, "bob").await;
    assert_eq!(mb.extranonce1[0], 2);
    for en2 in 0..3 {
        let f = mb.find(en2, true, None).unwrap();
        assert_eq!(
            code(&mb.call("mining.submit", f.params("bob")).await.unwrap()),
            0
        );
    }

    // Each gateway's verdicts are on its own partition of the replies topic, and nowhere
    // else: none on the verdicts topic.
    let replies = env.topic("replies");
    let long = Duration::from_secs(10);
    assert_eq!(
        verdicts_in(env, &replies, 1, to_node_a + 1, long),
        to_node_a
    );
    assert_eq!(verdicts_in(env, &replies, 2, 4, long), 3);
    let short = Duration::from_secs(2);
    let stray = env.read_messages(&env.topic("verdicts"), 1, short);
    assert!(stray.is_empty(), "no verdict on the verdicts topic");
    for p in [0, 3] {
        assert_eq!(verdicts_in(env, &replies, p, 1, short), 0);
    }

    // The share log: one line per share the node judged, with worker and status.
    let log = env.read_messages(&env.topic("sharelog"), to_node_a + 3, long);
    assert_eq!(log.len(), to_node_a + 3);
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for (key, payload, _) in &log {
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(v["worker"].as_str().unwrap().as_bytes(), &key[..]);
        *by_status
            .entry(v["status"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(by_status["accepted"], 4 + 3);
    assert_eq!(by_status["duplicate"], 1);
    assert_eq!(by_status["low_difficulty"], 1);
    assert_eq!(by_status["unknown_job"], 1);
    assert_eq!(by_status["stale"], 1);
    // The miners' `accepted` shares are the node's: the test's hashing and the validator's
    // agree.

    // Gateway 1's counters on its /metrics.
    let text = http_get(metrics_port, "/metrics");
    let m = |name: &str| metric(&text, name).unwrap_or(-1.0);
    assert_eq!(m("sharecheck_stratum_accepted_total"), 4.0, "{text}");
    assert_eq!(m("sharecheck_stratum_bad_requests_total"), 1.0, "{text}");
    assert_eq!(m("sharecheck_stratum_long_lines_total"), 1.0, "{text}");
    for (code, n) in [(20, 2), (21, 2), (22, 1), (23, 1), (24, 1), (25, 1)] {
        let line = format!("sharecheck_stratum_rejected_total{{code=\"{code}\"}} {n}");
        assert!(text.contains(&line), "{line} in {text}");
    }
    assert_eq!(m("sharecheck_stratum_submit_seconds_count"), 8.0, "{text}");
    assert_eq!(http_get(metrics_port, "/healthz"), "ok\n");
}

/// A share message routed to a topic the config does not allow, to a missing partition or
/// to a missing topic: its verdicts go to the verdicts topic with the reason; a good route
/// gets them.
#[test]
fn routes_the_node_must_not_write_to_are_refused() {
    let env = env("routes", "");
    let _node = env.node("node.log");
    let p = producer(&env);
    let routes = [
        env.topic("jobs"),
        format!("{}:99", env.topic("replies")),
        format!("{}.missing", env.topic("replies")),
        "not a topic".to_string(),
        format!("{}:3", env.topic("replies")),
    ];
    for (i, r) in routes.iter().enumerate() {
        let rec = ShareRecord::stratum(
            i as u64,
            "nojob",
            &[9, 9, 9, i as u8],
            &[0; 4],
            0,
            0,
            None,
            sharecheck::wire::binary::ShareTarget::Difficulty(1.0),
        );
        let headers = OwnedHeaders::new().insert(Header {
            key: "reply_to",
            value: Some(r.as_bytes()),
        });
        p.send(
            BaseRecord::to(&env.topic("shares"))
                .key(&[9, 9, 9, i as u8][..])
                .payload(&encode_shares(&[rec]))
                .headers(headers),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let refused = env.read_messages(&env.topic("verdicts"), 4, Duration::from_secs(30));
    assert_eq!(refused.len(), 4, "four refused routes");
    let mut why: Vec<String> = refused
        .iter()
        .map(|(_, _, h)| h.get("reply_refused").cloned().unwrap_or_default())
        .collect();
    why.sort();
    assert!(why.iter().any(|w| w.contains("is neither")), "{why:?}");
    assert!(
        why.iter()
            .any(|w| w.contains("partition 99 does not exist")),
        "{why:?}"
    );
    assert!(
        why.iter()
            .any(|w| w.contains(".missing") && w.contains("Unknown topic")),
        "{why:?}"
    );
    assert!(
        why.iter().any(|w| w.contains("not a Kafka topic name")),
        "{why:?}"
    );
    assert_eq!(
        verdicts_in(&env, &env.topic("replies"), 3, 1, Duration::from_secs(10)),
        1
    );
    // Nothing was written to the jobs topic by the node.
    let jobs = env.read_messages(&env.topic("jobs"), 1, Duration::from_secs(2));
    assert!(jobs.is_empty());
}

/// kill -9 of the node while a miner submits: every submit gets exactly one reply, the
/// verdict (after the restart) or error 20 within the gateway's timeout; none twice.
#[test]
fn a_node_killed_mid_run_leaves_no_submit_unanswered() {
    let env = env("stratum-kill", "");
    block_on(kill_mid_run(&env));
}

async fn kill_mid_run(env: &Env) {
    let mut node = Some(env.node("node1.log"));
    publish(env, &job("k1", 3));
    let (_g, addr) = gateway(env, 0, "gw.log");
    let mut m = miner(&addr, "carol").await;
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let mut replies: HashMap<u64, Vec<i64>> = HashMap::new();
    let start = Instant::now();
    // A submit every 100 ms for 20 s; the node is killed at 2 s and started again at 3 s
    // (it gets the partitions once the group gives up on the dead one, 6 s).
    let mut restarted = false;
    for en2 in 0u64.. {
        let t = start.elapsed();
        if t > Duration::from_secs(20) {
            break;
        }
        let f = m.find(en2, true, None).unwrap();
        let id = m.request("mining.submit", f.params("carol")).await.unwrap();
        sent.insert(id, Instant::now());
        if t > Duration::from_secs(2) && node.is_some() && !restarted {
            node.take().unwrap().signal("KILL");
        }
        if t > Duration::from_secs(3) && !restarted {
            node = Some(env.node("node2.log"));
            restarted = true;
        }
        // Take in what has come meanwhile.
        while let Ok(r) = tokio::time::timeout(Duration::from_millis(100), m.read_response()).await
        {
            if let Some((id, r)) = r.unwrap() {
                replies.entry(id).or_default().push(code(&r));
            }
        }
    }
    // Every submit's bound is 4 s; then 3 s more to see any second reply.
    let until = tokio::time::Instant::now() + Duration::from_secs(7);
    while let Ok(r) = tokio::time::timeout_at(until, m.read_response()).await {
        if let Some((id, r)) = r.unwrap() {
            replies.entry(id).or_default().push(code(&r));
        }
    }
    let total = sent.len() as u64;
    let mut accepted = 0;
    for id in sent.keys() {
        let r = replies.get(id).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(r.len(), 1, "submit {id}: replies {r:?}");
        assert!(r[0] == 0 || r[0] == 20, "submit {id}: {r:?}");
        accepted += (r[0] == 0) as u64;
    }
    assert_eq!(
        replies.len(),
        sent.len(),
        "no reply to a request never made"
    );
    report(&format!(
        "stratum kill -9: {total} submits in {:.1} s, {accepted} accepted, {} answered \
         with error 20 (no verdict in time)",
        start.elapsed().as_secs_f64(),
        total - accepted
    ));
    // The last 5 s of submits come well after the restart.
    assert!(
        accepted > 60,
        "the shares before the kill and after the restart count"
    );
    drop(node);
}

/// The client batches shares per partition as librdkafka's default partitioner places their
/// keys (so that a session's shares stay on one partition whoever sends them): checked
/// against librdkafka itself.
#[test]
fn the_clients_partitions_are_librdkafkas() {
    let env = Env::with_partitions("partitioner", "", 7);
    let p: rdkafka::producer::FutureProducer = env.client_config().create().unwrap();
    let topic = env.topic("shares");
    block_on(async {
        for i in 0..64u32 {
            let key = (i.wrapping_mul(2_654_435_761)).to_be_bytes();
            let rec = rdkafka::producer::FutureRecord::to(&topic)
                .key(&key[..])
                .payload(&b"x"[..]);
            let partition = p
                .send(rec, Duration::from_secs(10))
                .await
                .unwrap()
                .partition;
            let ours = sharecheck::client::batch::partition_of(&key, 7);
            assert_eq!(ours, partition, "key {key:?}");
        }
    });
}

/// The gateway's limits and vardiff, live: a static worker list, at most 2 connections, the
/// submit-rate bucket, and vardiff raising a fast session's difficulty before its window
/// ends.
#[test]
fn limits_and_vardiff() {
    let env = Env::new(
        "stratum-limits",
        &format!(
            "[stratum]\nstart_difficulty = {DIFFICULTY:e}\nmin_difficulty = 1e-12\n\
             metrics_listen = \"\"\nworkers = [\"alice\"]\nmax_connections = 2\n\
             max_submits_per_s = 3.0\nshares_per_minute = 6.0\nretarget_s = 60\n"
        ),
    );
    block_on(limits(&env));
}

async fn limits(env: &Env) {
    let _node = env.node("node.log");
    publish(env, &job("l1", 5));
    let (_g, addr) = gateway(env, 0, "gw.log");
    // Only the listed user (and its workers) is authorized.
    let mut other = Miner::connect(&addr).await.unwrap();
    other.subscribe().await.unwrap();
    let r = other
        .call("mining.authorize", json!(["mallory", "x"]))
        .await;
    assert_eq!(code(&r.unwrap()), 24);
    let mut m = miner(&addr, "alice.rig7").await;
    // A third connection is closed at once.
    let mut third = Miner::connect(&addr).await.unwrap();
    assert!(third.subscribe().await.is_err(), "over max_connections");
    drop(other);

    // 40 shares as fast as the miner finds them: the bucket (3/s, 30 deep) passes about 30;
    // vardiff (6 a minute, judged early at 4 × 6 = 24) raises the difficulty 4×.
    let mut codes: HashMap<i64, usize> = HashMap::new();
    let start_diff = m.difficulty;
    for en2 in 0..40 {
        let f = m.find(en2, true, None).unwrap();
        let r = m
            .call("mining.submit", f.params("alice.rig7"))
            .await
            .unwrap();
        *codes.entry(code(&r)).or_default() += 1;
    }
    assert!(
        codes.get(&20).copied().unwrap_or(0) >= 5,
        "rate limited: {codes:?}"
    );
    assert!(
        codes.get(&0).copied().unwrap_or(0) >= 24,
        "accepted: {codes:?}"
    );
    assert_eq!(
        m.difficulty,
        start_diff * 4.0,
        "vardiff raised the difficulty 4×"
    );
    // Shares found at the new difficulty count.
    let f = m.find(100, true, None).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = m
        .call("mining.submit", f.params("alice.rig7"))
        .await
        .unwrap();
    assert_eq!(code(&r), 0);
}
