//! End to end through a real broker: the generated workload sent through Kafka gets the same
//! verdicts as `sharecheck verify` on the same file.

mod kafka_support;
use kafka_support::*;
use sharecheck::wire::hex;
use std::time::Duration;

/// Every kind of share (stratum, header, SV2 standard, SV2 extended) and every status.
#[test]
fn kafka_verdicts_match_verify_by_share_id() {
    verdicts_match_verify("e2e", "", 4, "all");
}

/// The same with three validation lanes, small batches and five partitions (spread unevenly
/// over the lanes): a partition's shares stay in one lane, so its duplicates are still found.
#[test]
fn kafka_verdicts_match_verify_with_three_lanes() {
    let node_log = verdicts_match_verify(
        "e2e-lanes",
        "[backend]\nlanes = 3\n[backend.batch]\nmax_shares = 200\n",
        5,
        "mixed",
    );
    assert!(node_log.contains("lanes=3"), "node log:\n{node_log}");
}

/// Sends the generated workload of `gen --mode MODE` through a node configured with `extra`
/// and checks its verdicts against `verify`, its blocks topic, and its metrics. Returns the
/// node's log.
fn verdicts_match_verify(test: &str, extra: &str, partitions: i32, mode: &str) -> String {
    let port = free_port();
    let env = Env::with_partitions(
        test,
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n{extra}"),
        partitions,
    );
    let file = env.gen(
        "mixed.jsonl",
        &["--mode", mode, "--shares", "3000", "--seed", "7"],
    );
    let expected = env.verify(&file);
    assert_eq!(expected.len(), 3000);
    env.send(&file, &["--batch", "50"]);
    let mut node = env.node("node.log");
    let got = env.receive(3000, 120, &[]);
    let (got, repeats) = by_id(&got);
    let (want, _) = by_id(&expected);
    // The group rebalances incrementally (a member joining or leaving moves only the
    // partitions that change owner), as docs/operations.md says.
    let protocol = group_protocol(&env);
    assert_eq!(
        protocol, "cooperative-sticky",
        "the group's assignment protocol"
    );
    assert_eq!(repeats, 0, "a clean run repeats no verdict");
    assert_eq!(got.len(), want.len());
    let mut blocks = 0;
    let mut by_status: std::collections::BTreeMap<String, f64> = Default::default();
    for (id, w) in &want {
        let g = got
            .get(id)
            .unwrap_or_else(|| panic!("no verdict for share {id}"));
        for field in ["status", "hash", "difficulty", "header", "sv2_error"] {
            assert_eq!(
                g[field], w[field],
                "share {id}: {field}: kafka {g} verify {w}"
            );
        }
        if w["status"] == "block" {
            blocks += 1;
        }
        *by_status
            .entry(w["status"].as_str().unwrap().to_string())
            .or_default() += 1.0;
    }
    // Every block also went to the blocks topic, with its header.
    let msgs = env.read_messages(&env.topic("blocks"), blocks, Duration::from_secs(30));
    assert_eq!(msgs.len(), blocks, "block messages");
    for (_, payload, headers) in &msgs {
        let v = sharecheck::wire::binary::decode_verdicts(payload).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].status, sharecheck::model::Status::Block);
        assert!(v[0].header.is_some());
        assert_eq!(headers["source_topic"], env.topic("shares"));
    }
    // Each block message carries the share's own record (what a submitter rebuilds the
    // block's coinbase from).
    for (verdict_id, record_id) in block_share_records(&env, blocks) {
        assert_eq!(verdict_id, record_id, "the block's share record");
    }
    // Drained: every batch acknowledged, the in-flight gauge back at 0.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = http_get(port, "/metrics");
        if metric(&text, "sharecheck_batches_total").is_some_and(|b| b > 0.0)
            && metric(&text, "sharecheck_inflight_batches") == Some(0.0)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        metric(&text, "sharecheck_inflight_batches"),
        Some(0.0),
        "/metrics after the drain:\n{text}"
    );
    check_metrics(
        port,
        &text,
        &by_status,
        env.partitions,
        &env.topic("shares"),
    );
    assert_eq!(http_get(port, "/healthz"), "ok\n");
    // Ready: partitions held, jobs read, backend in service (the answer is refreshed every
    // second).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut ready = http_get(port, "/readyz");
    while ready != "ready\n" && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        ready = http_get(port, "/readyz");
    }
    assert_eq!(ready, "ready\n", "/readyz of a drained node");
    node.signal("TERM");
    let st = node.wait_for(Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "node: {}", node.log_text());
    node.log_text()
}

/// The node's /metrics after a clean drain of the e2e workload: the verdicts by status match
/// `verify`'s, every batch is counted in the batch histograms, the backend was busy, nothing
/// went to the dead-letter topic, the jobs are cached, and every partition's consumer lag
/// comes down to 0 (librdkafka's statistics, every 5 s, once the offsets are committed).
fn check_metrics(
    port: u16,
    text: &str,
    by_status: &std::collections::BTreeMap<String, f64>,
    partitions: i32,
    shares_topic: &str,
) {
    for (status, n) in by_status {
        let name = format!("sharecheck_shares_total{{status=\"{status}\"}}");
        assert_eq!(metric(text, &name), Some(*n), "{name} in:\n{text}");
    }
    let shares: f64 = by_status.values().sum();
    let batches = metric(text, "sharecheck_batches_total").unwrap();
    assert_eq!(metric(text, "sharecheck_batch_shares_sum"), Some(shares));
    assert_eq!(metric(text, "sharecheck_batch_shares_count"), Some(batches));
    assert_eq!(
        metric(text, "sharecheck_batch_latency_seconds_count"),
        Some(batches)
    );
    assert!(metric(text, "sharecheck_backend_busy_seconds_total").is_some_and(|s| s > 0.0));
    assert_eq!(metric(text, "sharecheck_dead_letters_total"), Some(0.0));
    // The conventions: the build, and the process itself.
    let build = format!(
        "sharecheck_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(metric(text, &build), Some(1.0), "{build} in:\n{text}");
    // (process_cpu_seconds_total counts whole seconds: present, maybe still 0.)
    assert!(
        metric(text, "process_cpu_seconds_total").is_some(),
        "{text}"
    );
    for name in ["process_resident_memory_bytes", "process_open_fds"] {
        assert!(
            metric(text, name).is_some_and(|v| v > 0.0),
            "{name} in:\n{text}"
        );
    }
    assert!(
        metric(text, "sharecheck_jobs_cached").is_some_and(|j| j > 0.0),
        "jobs cached in:\n{text}"
    );
    assert!(
        metric(text, "sharecheck_jobs_received_total").is_some_and(|j| j > 0.0),
        "jobs received in:\n{text}"
    );
    // The jobs were stamped by the broker within the last hour.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        metric(text, "sharecheck_last_job_timestamp_seconds")
            .is_some_and(|t| t > now - 3600.0 && t <= now + 5.0),
        "newest job's timestamp in:\n{text}"
    );
    assert!(
        text.lines().any(
            |l| l.starts_with("sharecheck_backend_in_service{backend=\"cpu") && l.ends_with(" 1")
        ),
        "backend in service in:\n{text}"
    );
    assert_eq!(metric(text, "sharecheck_zookeeper_connected"), Some(0.0));
    let lags = |text: &str| -> Vec<Option<f64>> {
        (0..partitions)
            .map(|p| {
                metric_with(
                    text,
                    "sharecheck_consumer_lag_messages",
                    &[("topic", shares_topic), ("partition", &p.to_string())],
                )
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut text = text.to_string();
    while lags(&text).iter().any(|l| *l != Some(0.0)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        text = http_get(port, "/metrics");
    }
    assert!(
        lags(&text).iter().all(|l| *l == Some(0.0)),
        "consumer lag per partition {:?} in:\n{text}",
        lags(&text)
    );
    // Set every second (the drain can take less).
    assert_eq!(
        metric(&text, "sharecheck_partitions_held"),
        Some(partitions as f64),
        "partitions held in:\n{text}"
    );
    // Every held partition has a stall series, at 0 while it moves on.
    for p in 0..partitions {
        let labels = [("topic", shares_topic), ("partition", &p.to_string())];
        assert_eq!(
            metric_with(&text, "sharecheck_partition_stalled", &labels),
            Some(0.0),
            "partition {p} stalled in:\n{text}"
        );
    }
}

/// Header shares need no job, so a node must validate them while the jobs topic is still
/// empty: each batch waits for the jobs topic's end offsets, and an empty topic's end (0)
/// has to come back as an answer, not as an error that keeps the batch waiting.
#[test]
fn header_shares_get_verdicts_while_the_jobs_topic_is_empty() {
    let env = Env::new("nojobs", "");
    let file = env.gen(
        "header.jsonl",
        &["--mode", "header", "--shares", "400", "--seed", "11"],
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let shares_only: String = text
        .lines()
        .filter(|l| !l.starts_with("{\"job\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        shares_only.lines().count() >= 400,
        "the file keeps its shares"
    );
    assert!(
        shares_only.len() < text.len(),
        "the file had jobs to leave out"
    );
    let file = env.dir.join("header-no-jobs.jsonl");
    std::fs::write(&file, shares_only).unwrap();
    let expected = env.verify(&file);
    assert_eq!(expected.len(), 400);
    // Without the pool's standard jobs no header share is worth anything.
    for v in &expected {
        let s = v["status"].as_str().unwrap();
        assert!(["unknown_job", "malformed"].contains(&s), "{v}");
    }
    env.send(&file, &["--batch", "25"]);
    let (want, _) = by_id(&expected);
    stop_cleanly(node_agrees_with_verify(
        &env,
        &want,
        &["status", "hash"],
        &[],
    ));
}

/// Starts a node on what was sent to `env`, reads a verdict for every share of `want`
/// (`verify`'s, by id) and checks `fields` of each, except for the ids in `skip`. Returns
/// the node, still running.
fn node_agrees_with_verify(
    env: &Env,
    want: &std::collections::HashMap<u64, serde_json::Value>,
    fields: &[&str],
    skip: &[u64],
) -> Proc {
    let node = env.node("node.log");
    let got = env.receive(want.len(), 60, &[]);
    let (got, _) = by_id(&got);
    assert_eq!(got.len(), want.len());
    for (id, w) in want {
        if skip.contains(id) {
            continue;
        }
        let g = got
            .get(id)
            .unwrap_or_else(|| panic!("no verdict for share {id}"));
        for f in fields {
            assert_eq!(g[f], w[f], "share {id}: {f}: kafka {g} verify {w}");
        }
    }
    node
}

/// Stops a node, which must exit cleanly.
fn stop_cleanly(mut node: Proc) {
    node.signal("TERM");
    let st = node.wait_for(Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "node: {}", node.log_text());
}

#[test]
fn gen_with_brokers_sends_the_workload_through_kafka() {
    let env = Env::new("genkafka", "");
    let args = ["--mode", "mixed", "--shares", "800", "--seed", "9"];
    let out = env
        .cmd(&["gen", "--brokers", &env.brokers, "--batch", "40"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "nothing on stdout when sending");
    // The same workload as a file, for verify.
    let file = env.gen("same.jsonl", &args);
    let (want, _) = by_id(&env.verify(&file));
    let mut node = env.node("node.log");
    let (got, repeats) = by_id(&env.receive(800, 120, &[]));
    assert_eq!(repeats, 0);
    for (id, w) in &want {
        assert_eq!(got[id]["status"], w["status"], "share {id}");
    }
    node.signal("TERM");
    assert!(node.wait_for(Duration::from_secs(10)).is_some());
}

/// `topics create` is idempotent (a second run finds every topic and changes nothing), and
/// it makes the topics as configured: partition counts and retention.ms.
#[test]
fn topics_create_is_idempotent_and_sets_partitions_and_retention() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::Consumer;

    let env = Env::with_partitions("topics", "", 3);
    // The same config with retention settings and topics of their own, created twice.
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text
        .replace(&format!("\"{}.", env.name), &format!("\"{}.r.", env.name))
        .replace(
            "partitions = 3\n",
            "partitions = 3\nretention_ms = 3600000\njobs_retention_ms = 7200000\n",
        );
    let config = env.dir.join("retention.toml");
    std::fs::write(&config, text).unwrap();
    let create = || {
        let out = std::process::Command::new(bin())
            .args(["--config", config.to_str().unwrap(), "topics", "create"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = create();
    assert_eq!(first.lines().count(), 8, "{first}");
    assert!(first.lines().all(|l| l.ends_with(": created")), "{first}");
    let second = create();
    assert_eq!(second.lines().count(), 8, "{second}");
    assert!(second.lines().all(|l| l.ends_with(": exists")), "{second}");

    let want = [
        ("shares", 3, "3600000"),
        ("jobs", 1, "7200000"),
        ("verdicts", 3, "3600000"),
        ("blocks", 1, "7200000"),
        ("dead-letter", 1, "3600000"),
        ("templates", 1, "7200000"),
        ("replies", 4, "3600000"),
        ("sharelog", 3, "7200000"),
    ];
    let reader = env.reader(&env.topic("shares"));
    let admin: AdminClient<DefaultClientContext> = env.client_config().create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (which, partitions, retention) in want {
        let topic = env.topic(&format!("r.{which}"));
        let md = reader
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .unwrap();
        assert_eq!(md.topics()[0].partitions().len(), partitions, "{topic}");
        let configs = rt
            .block_on(admin.describe_configs(
                &[ResourceSpecifier::Topic(&topic)],
                &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
            ))
            .unwrap();
        let resource = configs[0].as_ref().unwrap();
        let got = resource
            .get("retention.ms")
            .and_then(|e| e.value.clone())
            .unwrap_or_default();
        assert_eq!(got, retention, "{topic} retention.ms");
        let ts_type = resource
            .get("message.timestamp.type")
            .and_then(|e| e.value.clone())
            .unwrap_or_default();
        let want_ts = if which == "shares" || which == "jobs" {
            "LogAppendTime"
        } else {
            "CreateTime"
        };
        assert_eq!(ts_type, want_ts, "{topic} message.timestamp.type");
        if which == "templates" {
            let value = |k: &str| resource.get(k).and_then(|e| e.value.clone());
            assert_eq!(value("cleanup.policy").as_deref(), Some("compact,delete"));
            assert_eq!(value("max.message.bytes").as_deref(), Some("16777216"));
        }
    }
}

/// The assignment protocol of the test's consumer group, as the group coordinator reports it.
fn group_protocol(env: &Env) -> String {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = env.client_config().create().unwrap();
    let groups = c
        .fetch_group_list(Some(&env.group), Duration::from_secs(10))
        .unwrap();
    groups
        .groups()
        .first()
        .map(|g| g.protocol().to_string())
        .unwrap_or_default()
}

/// (verdict id, id of the record in the `share_record` header) of the first `n` messages of
/// the blocks topic.
fn block_share_records(env: &Env, n: usize) -> Vec<(u64, u64)> {
    use rdkafka::message::{Headers, Message};
    let c = env.reader(&env.topic("blocks"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n && std::time::Instant::now() < deadline {
        let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let v = sharecheck::wire::binary::decode_verdicts(m.payload().unwrap()).unwrap();
        let rec = m
            .headers()
            .and_then(|h| h.iter().find(|x| x.key == "share_record"))
            .and_then(|x| x.value)
            .expect("a share_record header");
        assert_eq!(rec.len(), 128, "a whole share record");
        let rec: sharecheck::wire::binary::ShareRecord = bytemuck::pod_read_unaligned(rec);
        out.push((v[0].id.unwrap(), rec.id()));
    }
    assert_eq!(out.len(), n, "block messages read");
    out
}

/// A producer's timestamp cannot steer staleness: a share message stamped 50 minutes ahead
/// on every partition, between two halves of a workload, leaves every verdict equal to
/// verify's. `topics create` makes the shares and jobs topics LogAppendTime, so the broker's
/// append time replaces the stamp; with the producer's stamp the partition's clock jumped
/// and every job expired, and the second half's shares were stale.
#[test]
fn a_share_stamped_in_the_future_does_not_expire_the_jobs() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use sharecheck::wire::binary::{encode_shares, ShareRecord, ShareTarget};
    let env = Env::new("future-stamp", "");
    let file = env.gen("s.jsonl", &["--shares", "2000", "--seed", "31"]);
    let expected = env.verify(&file);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let halves = [env.dir.join("first.jsonl"), env.dir.join("second.jsonl")];
    std::fs::write(&halves[0], first.join("\n") + "\n").unwrap();
    std::fs::write(&halves[1], second.join("\n") + "\n").unwrap();
    env.send(&halves[0], &["--batch", "20"]);
    let p: BaseProducer = env.client_config().create().unwrap();
    let future = sharecheck::kafka::now_ms() + 50 * 60 * 1000;
    for part in 0..env.partitions {
        let rec = ShareRecord::stratum(
            1_000_000 + part as u64,
            "nojob",
            &[1, 2, 3, 4],
            &[0, 0, 0, 1],
            1000,
            0,
            None,
            ShareTarget::Difficulty(1.0),
        );
        let payload = encode_shares(&[rec]);
        p.send(
            BaseRecord::<[u8], [u8]>::to(&env.topic("shares"))
                .partition(part)
                .timestamp(future)
                .payload(&payload[..]),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
    env.send(&halves[1], &["--batch", "20"]);
    let mut node = env.node("node.log");
    let n = expected.len() + env.partitions as usize;
    let got = env.receive(n, 120, &[]);
    let (got, _) = by_id(&got);
    let (want, _) = by_id(&expected);
    let differ: Vec<u64> = want
        .iter()
        .filter(|(id, w)| got.get(id).map(|g| &g["status"]) != Some(&w["status"]))
        .map(|(id, _)| *id)
        .collect();
    report(&format!(
        "future stamp: {} of {} verdicts differ from verify after share messages stamped 50 min ahead",
        differ.len(),
        want.len()
    ));
    assert!(
        differ.is_empty(),
        "e.g. share {}: {}",
        differ[0],
        got[&differ[0]]
    );
    node.signal("TERM");
    assert!(node.wait_for(Duration::from_secs(10)).is_some());
}

/// A shares topic whose producers choose the timestamps: the node says so at start, and
/// with `kafka.require_log_append_time` refuses to run.
#[test]
fn a_create_time_shares_topic_is_refused_when_log_append_time_is_required() {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let env = Env::new("create-time", "");
    let admin: AdminClient<DefaultClientContext> = env.client_config().create().unwrap();
    let topic = env.topic("shares");
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic))
        .set("message.timestamp.type", "CreateTime");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(admin.alter_configs(&[alter], &AdminOptions::new()))
        .unwrap();
    assert!(r.iter().all(|x| x.is_ok()), "{r:?}");
    // The broker applies a config change through its metadata log: wait until it describes
    // the topic as changed, or the node may still read LogAppendTime.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let d = rt
            .block_on(
                admin.describe_configs(&[ResourceSpecifier::Topic(&topic)], &AdminOptions::new()),
            )
            .unwrap();
        let ts = d[0]
            .as_ref()
            .ok()
            .and_then(|c| c.get("message.timestamp.type"))
            .and_then(|e| e.value.clone());
        if ts.as_deref() == Some("CreateTime") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the broker kept {ts:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&env.config).unwrap();
    let strict = text.replacen("[kafka]\n", "[kafka]\nrequire_log_append_time = true\n", 1);
    std::fs::write(&env.config, strict).unwrap();
    let mut node = env.node("node.log");
    let st = node.wait_for(Duration::from_secs(30));
    let log = node.log_text();
    assert!(st.is_some_and(|s| !s.success()), "the node ran: {log}");
    assert!(
        log.contains(&topic) && log.contains("message.timestamp.type=CreateTime"),
        "{log}"
    );
}

#[test]
fn send_refuses_a_topic_that_does_not_exist_and_creates_none() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let env = Env::new("missing", "");
    let file = env.gen("s.jsonl", &["--shares", "10"]);
    let missing = env.topic("nope");
    let text = std::fs::read_to_string(&env.config).unwrap();
    let from = format!("shares = \"{}\"", env.topic("shares"));
    assert!(text.contains(&from), "{text}");
    let alt = env.dir.join("missing.toml");
    std::fs::write(
        &alt,
        text.replace(&from, &format!("shares = \"{missing}\"")),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .arg("--config")
        .arg(&alt)
        .arg("send")
        .arg(&file)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "send to a missing topic succeeded");
    assert!(
        err.contains("does not exist") && err.contains(&missing) && err.contains("topics create"),
        "{err}"
    );
    let c: BaseConsumer = env.client_config().create().unwrap();
    let md = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    assert!(
        !md.topics().iter().any(|t| t.name() == missing),
        "send created {missing}"
    );
}

/// `run` before `topics create`: it says at once which topic it waits for (it used to be
/// silent for 30 s), and a signal meanwhile stops it at once, not after the 9 s exit limit.
#[test]
fn run_before_the_topics_exist_says_so_and_stops_at_once() {
    let env = Env::new("notopics", "");
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let missing = format!("{}-never-created", env.topic("jobs"));
    let cfg = cfg.replacen(
        &format!("jobs = \"{}\"", env.topic("jobs")),
        &format!("jobs = \"{missing}\""),
        1,
    );
    std::fs::write(&env.config, cfg).unwrap();
    let mut node = env.node("node.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !node.log_text().contains("waiting up to") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = node.log_text();
    assert!(
        log.contains(&missing) && log.contains("sharecheck topics create"),
        "node log:\n{log}"
    );
    let t0 = std::time::Instant::now();
    node.signal("INT");
    let st = node.wait_for(Duration::from_secs(5));
    assert!(
        st.is_some_and(|s| s.success()),
        "stopped in {:.1} s: {st:?}; node log:\n{}",
        t0.elapsed().as_secs_f64(),
        node.log_text()
    );
}

/// A header share and an SV2 standard share of the same work are one proof of work: on a
/// topic of 8 partitions the second of each pair is a duplicate, whichever kind comes first,
/// as `verify` says (the producers' keys put both kinds of one work in one partition).
#[test]
fn a_header_share_and_a_standard_share_of_one_work_meet_on_any_partition() {
    let env = Env::with_partitions("crosskind", "", 8);
    let prevhash: [u8; 32] = std::array::from_fn(|i| 0x20 + i as u8);
    let root: [u8; 32] = std::array::from_fn(|i| 0x5a ^ i as u8);
    let (version, ntime, nbits) = (0x2000_0000u32, 0x66a0_e2b1u32, 0x1d00_ffffu32);
    let mut lines = vec![format!(
        r#"{{"job": {{"job_id": "17", "prevhash": "{}", "merkle_root": "{}", "version": "{version:08x}", "nbits": "{nbits:08x}", "ntime": "{ntime:08x}", "clean_jobs": true, "version_mask": "1fffe000"}}}}"#,
        hex::encode(&sharecheck::model::job::swap_words(&prevhash)),
        hex::encode(&root)
    )];
    let pairs = 48u64;
    for i in 0..pairs {
        let nonce = (i as u32).wrapping_mul(0x9e37_79b9);
        let standard = format!(
            r#"{{"share": {{"id": {}, "kind": "sv2_standard", "job_id": "17", "ntime": {ntime}, "nonce": {nonce}, "version": {version}, "difficulty": 1e-12}}}}"#,
            2 * i + (i % 2)
        );
        let mut h = Vec::with_capacity(80);
        h.extend(version.to_le_bytes());
        h.extend(prevhash);
        h.extend(root);
        h.extend(ntime.to_le_bytes());
        h.extend(nbits.to_le_bytes());
        h.extend(nonce.to_le_bytes());
        let header = format!(
            r#"{{"share": {{"id": {}, "header": "{}", "difficulty": 1e-12}}}}"#,
            2 * i + 1 - (i % 2),
            hex::encode(&h)
        );
        // Even pairs: the standard share first; odd pairs: the header share first.
        if i % 2 == 0 {
            lines.extend([standard, header]);
        } else {
            lines.extend([header, standard]);
        }
    }
    let file = env.dir.join("crosskind.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let expected = env.verify(&file);
    let (want, _) = by_id(&expected);
    for i in 0..pairs {
        assert_eq!(want[&(2 * i)]["status"], "accepted", "verify, pair {i}");
        assert_eq!(
            want[&(2 * i + 1)]["status"],
            "duplicate",
            "verify, pair {i}"
        );
    }
    env.send(&file, &["--batch", "4"]);
    stop_cleanly(node_agrees_with_verify(
        &env,
        &want,
        &["status", "hash"],
        &[],
    ));
}

/// SV2's future jobs: a share on a future job is unknown_job until the SetNewPrevHash that
/// activates it (in arrival order, `verify`); the channels a new block activates one after the other
/// stay live together; the old block's job is stale; an activation of an id no future job
/// waits under goes to the dead-letter topic. The node agrees with `verify` share by share.
#[test]
fn future_jobs_count_once_their_prev_hash_arrives() {
    // The test config has stale_grace_ms = 0: a share after a clean job is stale at once.
    let env = Env::new("future", "");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let (p1, p2) = ([0x11u8; 32], [0x22u8; 32]);
    let root = |r: u8| [r; 32];
    let notify = |p: &[u8; 32]| hex::encode(&sharecheck::model::job::swap_words(p));
    let live = format!(
        r#"{{"job": {{"job_id": "1", "prevhash": "{}", "merkle_root": "{}", "version": "20000000", "nbits": "1d00ffff", "ntime": "{now:08x}", "clean_jobs": true}}}}"#,
        notify(&p1),
        hex::encode(&root(1))
    );
    let future = |id: &str, r: u8| {
        format!(
            r#"{{"job": {{"job_id": "{id}", "future": true, "merkle_root": "{}", "version": "20000000"}}}}"#,
            hex::encode(&root(r))
        )
    };
    let activate = |id: &str| {
        format!(
            r#"{{"job": {{"job_id": "{id}", "activate": true, "prevhash": "{}", "nbits": "1d00ffff", "ntime": "{now:08x}"}}}}"#,
            notify(&p2)
        )
    };
    let share = |id: u64, job: &str, nonce: u32| {
        format!(
            r#"{{"share": {{"id": {id}, "kind": "sv2_standard", "job_id": "{job}", "ntime": {now}, "nonce": {nonce}, "version": 536870912, "difficulty": 1e-12}}}}"#
        )
    };
    // Job 3's work of share 4 as a header share.
    let mut h = Vec::new();
    h.extend(0x2000_0000u32.to_le_bytes());
    h.extend(p2);
    h.extend(root(3));
    h.extend(now.to_le_bytes());
    h.extend(0x1d00_ffffu32.to_le_bytes());
    h.extend(7u32.to_le_bytes());
    let header = format!(
        r#"{{"share": {{"id": 6, "header": "{}", "difficulty": 1e-12}}}}"#,
        hex::encode(&h)
    );
    let lines = [
        live,
        future("2", 2),
        future("3", 3),
        share(0, "2", 1),
        share(1, "1", 1),
        activate("2"),
        activate("3"),
        share(2, "2", 5),
        share(3, "1", 5),
        share(4, "3", 7),
        share(5, "2", 5),
        header,
        activate("9"),
        share(7, "9", 1),
    ];
    let want_status = [
        "unknown_job",
        "accepted",
        "accepted",
        "stale",
        "accepted",
        "duplicate",
        "duplicate",
        "unknown_job",
    ];
    let file = env.dir.join("future.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let expected = env.verify(&file);
    let (want, _) = by_id(&expected);
    for (id, s) in want_status.iter().enumerate() {
        assert_eq!(want[&(id as u64)]["status"], *s, "verify, share {id}");
    }
    env.send(&file, &["--batch", "1"]);
    // Share 0, on job 2 before its activation, is unknown_job in arrival order. A node
    // judges a share by its stamp against every job it has read by then, newer ones
    // included (a share may reach the shares topic before its job reaches the jobs topic),
    // and here the whole file was sent before the node started.
    let node = node_agrees_with_verify(&env, &want, &["status"], &[0]);
    // The activation of job 9 is a dead letter, with the reason.
    let dead = env.read_messages(&env.topic("dead-letter"), 1, Duration::from_secs(30));
    assert_eq!(dead.len(), 1, "one dead letter");
    let reason = dead[0]
        .2
        .get(sharecheck::kafka::H_ERROR)
        .cloned()
        .unwrap_or_default();
    assert!(
        reason.contains("no future job"),
        "dead letter: {:?}",
        dead[0].2
    );
    stop_cleanly(node);
}
