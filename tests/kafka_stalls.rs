//! Drills that once left a partition stuck for good while the node said it was healthy.
//! Each checks the property that matters: every share gets its verdict, every partition's
//! committed offset reaches its end, and what could not be used lands in the dead-letter
//! topic in a form that fits.

mod kafka_support;
use kafka_support::*;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};

/// Garbage of `len` bytes, different for each `seed` (never a share batch: no magic).
fn garbage(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 0x80)
        .collect()
}

/// Raises `topic`'s max.message.bytes (the broker's default is 1 048 588).
fn allow_large_messages(env: &Env, topic: &str, bytes: usize) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &env.brokers)
        .create()
        .unwrap();
    let value = bytes.to_string();
    let alter = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("max.message.bytes", &value);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(admin.alter_configs(&[alter], &AdminOptions::new()))
        .unwrap();
    assert!(r.iter().all(|x| x.is_ok()), "alter_configs: {r:?}");
}

/// Waits until the group's committed offsets reach every shares partition's end; returns
/// the last (committed, ends) seen.
fn wait_all_committed(env: &Env, limit: Duration) -> (Vec<i64>, Vec<i64>, bool) {
    let deadline = Instant::now() + limit;
    loop {
        let (c, e) = committed_now(env);
        if c == e {
            return (c, e, true);
        }
        if Instant::now() >= deadline {
            return (c, e, false);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// 66 share messages of 1 040 000 bytes of garbage (more than librdkafka's producer takes,
/// as much as the broker does) and one of 10 MB, among good share messages, and a job
/// message of 1 040 000 bytes: each reaches the dead-letter topic cut to fit, with its
/// original size and source in headers; every good share gets its verdict; every offset is
/// committed.
#[test]
fn oversize_undecodable_messages_are_dead_lettered_cut_to_fit_and_partitions_move_on() {
    let env = Env::new("oversize", "");
    let shares_topic = env.topic("shares");
    allow_large_messages(&env, &shares_topic, 16 << 20);
    let n = 6000;
    let file = env.gen(
        "s.jsonl",
        &[
            "--mode",
            "mixed",
            "--shares",
            &n.to_string(),
            "--seed",
            "21",
        ],
    );
    let expected = env.verify(&file);
    // The workload in two halves, with the bad messages between them: good shares follow the
    // bad ones on every partition.
    let text = std::fs::read_to_string(&file).unwrap();
    let all_lines: Vec<&str> = text.lines().collect();
    let (first, second) = all_lines.split_at(all_lines.len() / 2);
    let halves = [env.dir.join("first.jsonl"), env.dir.join("second.jsonl")];
    std::fs::write(&halves[0], first.join("\n") + "\n").unwrap();
    std::fs::write(&halves[1], second.join("\n") + "\n").unwrap();
    env.send(&halves[0], &["--batch", "20"]);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &env.brokers)
        .set("message.max.bytes", (20 << 20).to_string())
        .create()
        .unwrap();
    let mut sent: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..66u8 {
        sent.push((format!("big-{i}"), garbage(i, 1_040_000)));
    }
    sent.push(("huge".into(), garbage(200, 10 << 20)));
    for (k, payload) in &sent {
        loop {
            match p.send(BaseRecord::to(&shares_topic).key(k).payload(payload)) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(format!("{e}").contains("Queue full"), "{e}");
                    p.poll(Duration::from_millis(50));
                }
            }
        }
    }
    let job = garbage(250, 1_040_000);
    p.send(
        BaseRecord::to(&env.topic("jobs"))
            .key("big-job")
            .payload(&job),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    p.flush(Duration::from_secs(60)).unwrap();
    sent.push(("big-job".into(), job));
    env.send(&halves[1], &["--batch", "20"]);

    let mut node = env.node("node.log");
    let t0 = Instant::now();
    let out = env
        .cmd(&["receive", "--count", &n.to_string(), "--timeout", "120"])
        .output()
        .unwrap();
    let got = lines(&out.stdout);
    let (got, repeats) = by_id(&got);
    let dead = env.read_messages(
        &env.topic("dead-letter"),
        sent.len(),
        Duration::from_secs(60),
    );
    let (committed, ends, all) = wait_all_committed(&env, Duration::from_secs(60));
    report(&format!(
        "oversize: {} good shares, {} verdicts ({repeats} repeated) in {:.1} s, {} dead letters \
         of {} bad messages, committed {committed:?} of {ends:?}",
        n,
        got.len(),
        t0.elapsed().as_secs_f64(),
        dead.len(),
        sent.len()
    ));
    assert!(
        out.status.success() && got.len() == n,
        "{} of {n} shares got a verdict; node log:\n{}",
        got.len(),
        node.log_text()
    );
    assert_eq!(repeats, 0, "a run without faults repeats no verdict");
    let (want, _) = by_id(&expected);
    for (id, w) in &want {
        let g = &got[id];
        for field in ["status", "hash", "difficulty", "header"] {
            assert_eq!(
                g[field], w[field],
                "share {id}: {field}: kafka {g} verify {w}"
            );
        }
    }
    assert!(all, "offsets not committed; node log:\n{}", node.log_text());
    assert_eq!(dead.len(), sent.len(), "dead letters");
    for (key, payload, headers) in &dead {
        let key = String::from_utf8_lossy(key).to_string();
        let (_, original) = sent
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("a dead letter we did not send: {key}"));
        assert!(
            payload.len() < 1_000_000,
            "{key}: {} bytes do not fit",
            payload.len()
        );
        assert!(!payload.is_empty(), "{key}: the payload's start is kept");
        assert_eq!(
            &original[..payload.len()],
            payload.as_slice(),
            "{key}: a prefix"
        );
        assert_eq!(
            headers.get("original_size").map(String::as_str),
            Some(original.len().to_string().as_str()),
            "{key}: {headers:?}"
        );
        assert!(headers["source_offset"].parse::<i64>().is_ok(), "{key}");
        assert!(!headers["error"].is_empty(), "{key}");
    }
    node.signal("TERM");
    assert!(node.wait_for(Duration::from_secs(10)).is_some());
}

/// Exactly-once delivery balanced by ZooKeeper: one of two nodes is SIGSTOPped under load
/// until the other has taken its partitions (fencing its transactional producers), then
/// resumed. The resumed node finds itself fenced and later gets partitions again: each must
/// be fetched and committed (a pause left over from the fenced path once survived the new
/// assignment and held a partition for good), and every share has one committed verdict.
#[test]
fn a_node_paused_past_its_session_and_resumed_leaves_no_partition_stuck() {
    ensure_zookeeper();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let group = format!("t{}-zombie-{:x}", std::process::id(), nanos & 0xffff_ffff);
    let extra = format!(
        "[backend]\ninflight = 2\n[backend.batch]\nmax_shares = 64\nmax_wait_ms = 1\n\
         [balance]\nmode = \"zookeeper\"\nzookeeper = \"{}\"\ngroup = \"{group}\"\n\
         session_timeout_ms = 4000\n[log]\nformat = \"json\"\n",
        zookeeper()
    );
    let env = Env::with_partitions("zombie", &extra, 6);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen("[kafka]\n", "[kafka]\ndelivery = \"exactly_once\"\n", 1);
    std::fs::write(&env.config, text).unwrap();
    let n = 30_000;
    let file = env.gen(
        "s.jsonl",
        &[
            "--mode",
            "mixed",
            "--shares",
            &n.to_string(),
            "--seed",
            "17",
        ],
    );
    let expected = env.verify(&file);
    let node = |id: &str| {
        env.spawn(
            &["run", "--node-id", id, "--capacity", "1"],
            &format!("{id}.log"),
        )
    };
    let a = node("a");
    let b = node("b");
    let started = |p: &Proc| p.log_text().contains("partition started");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(started(&a) && started(&b)) {
        assert!(
            Instant::now() < deadline,
            "a:\n{}\nb:\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A steady load for about 20 s, so that b has transactions open when it is stopped and
    // when it wakes up.
    let mut sender = env.spawn(
        &[
            "send",
            "--batch",
            "20",
            "--rate",
            "1500",
            file.to_str().unwrap(),
        ],
        "send.log",
    );
    std::thread::sleep(Duration::from_secs(3));
    b.signal("STOP");
    let t_stop = Instant::now();
    // a takes every partition once b's session has expired.
    let owned_by = |who: &str| -> usize {
        let out = env.cmd(&["cluster", "status", "--json"]).output().unwrap();
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        s["partitions"]
            .as_array()
            .map(|ps| ps.iter().filter(|p| p["owner"] == who).count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while owned_by("a") < 6 {
        assert!(
            Instant::now() < deadline,
            "a did not take b's partitions:\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let taken_after = t_stop.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    b.signal("CONT");
    // b comes back and is given partitions again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while owned_by("b") == 0 {
        assert!(
            Instant::now() < deadline,
            "b got no partition back:\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let st = sender.wait_for(Duration::from_secs(120));
    assert!(
        st.is_some_and(|s| s.success()),
        "send: {}",
        sender.log_text()
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut committed, mut ends) = committed_now(&env);
    while committed != ends && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        (committed, ends) = committed_now(&env);
    }
    let blog = b.log_text();
    let fenced = blog.matches("fenced").count();
    let got = committed_verdicts(&env, Duration::from_secs(3));
    let total: usize = got.values().map(|x| x.0).sum();
    report(&format!(
        "zombie: a owned all 6 partitions {:.1} s after b's SIGSTOP; b logged {fenced} fenced \
         lines; {n} shares, {} with a committed verdict, {total} committed verdicts; committed \
         {committed:?} of {ends:?}",
        taken_after.as_secs_f64(),
        got.len()
    ));
    assert_eq!(
        committed,
        ends,
        "partitions stopped committing with both nodes alive\na:\n{}\nb:\n{blog}",
        a.log_text()
    );
    check_against_verify(&got, &expected);
    for mut p in [a, b] {
        p.signal("TERM");
        assert!(p.wait_for(Duration::from_secs(10)).is_some());
    }
}

/// A verdicts topic that refuses the node's messages (its max.message.bytes below a verdict
/// message): the partitions stop committing, and the node says so, with `/healthz` 503
/// naming each partition and the broker's error and `sharecheck_partition_stalled` at 1.
/// Once the topic takes them again every share gets its verdict, every offset is committed
/// and `/healthz` is 200 again.
#[test]
fn a_partition_that_cannot_deliver_is_reported_stalled_and_recovers() {
    let port = free_port();
    let env = Env::new(
        "stalled",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen("[kafka]\n", "[kafka]\nstall_timeout_s = 3\n", 1);
    std::fs::write(&env.config, text).unwrap();
    let verdicts = env.topic("verdicts");
    allow_large_messages(&env, &verdicts, 100);
    let n = 2000;
    let file = env.gen(
        "s.jsonl",
        &[
            "--mode",
            "mixed",
            "--shares",
            &n.to_string(),
            "--seed",
            "23",
        ],
    );
    let expected = env.verify(&file);
    env.send(&file, &["--batch", "50"]);
    let mut node = env.node("node.log");
    let t0 = Instant::now();
    let mut health = String::new();
    while t0.elapsed() < Duration::from_secs(60) {
        health = http_get(port, "/healthz");
        if health.starts_with("stalled") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let reported_after = t0.elapsed();
    assert!(
        health.starts_with("stalled")
            && health.contains("partition ")
            && health.contains("too large"),
        "/healthz: {health:?}; node log:\n{}",
        node.log_text()
    );
    let metrics = http_get(port, "/metrics");
    let stalled = metrics
        .lines()
        .filter(|l| l.starts_with("sharecheck_partition_stalled{") && l.ends_with(" 1"))
        .count();
    assert!(stalled > 0, "no stalled gauge at 1:\n{metrics}");
    let (before, ends) = committed_now(&env);
    // The topic takes the verdicts again.
    allow_large_messages(&env, &verdicts, 1_048_588);
    let got = env.receive(n, 120, &[]);
    let (got, repeats) = by_id(&got);
    let (committed, ends2, all) = wait_all_committed(&env, Duration::from_secs(60));
    let t1 = Instant::now();
    while t1.elapsed() < Duration::from_secs(20) && http_get(port, "/healthz") != "ok\n" {
        std::thread::sleep(Duration::from_millis(250));
    }
    let health_after = http_get(port, "/healthz");
    report(&format!(
        "stalled: /healthz said stalled {:.1} s after the start ({stalled} partitions, \
         committed {before:?} of {ends:?}); after the topic took verdicts again: {} verdicts \
         ({repeats} repeated), committed {committed:?} of {ends2:?}, /healthz {:?}",
        reported_after.as_secs_f64(),
        got.len(),
        health_after.trim()
    ));
    assert_eq!(got.len(), n);
    let (want, _) = by_id(&expected);
    for (id, w) in &want {
        assert_eq!(got[id]["status"], w["status"], "share {id}");
    }
    assert!(all, "offsets not committed; node log:\n{}", node.log_text());
    assert_eq!(health_after, "ok\n", "node log:\n{}", node.log_text());
    node.signal("TERM");
    assert!(node.wait_for(Duration::from_secs(10)).is_some());
}
