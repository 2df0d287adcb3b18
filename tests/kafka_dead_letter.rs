//! Undecodable messages go to the dead-letter topic with the reason in a header, their
//! offsets are committed, and the good batches around them flow on. Job messages the node
//! cannot use go there too.

mod kafka_support;
use kafka_support::*;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use sharecheck::wire::binary::{encode_job, encode_shares, ShareRecord, ShareTarget};
use std::time::Duration;

fn share(id: u64) -> ShareRecord {
    ShareRecord::stratum(
        id,
        "nojob",
        &[1, 2, 3, 4],
        &[0, 0, 0, id as u8],
        1000,
        id as u32,
        None,
        ShareTarget::Difficulty(1.0),
    )
}

#[test]
fn malformed_messages_land_in_the_dead_letter_topic() {
    let env = Env::new("dlq", "");
    let job = sharecheck::model::Job {
        job_id: "j".into(),
        prevhash: [0; 32],
        coinb1: vec![1; 40],
        coinb2: vec![2; 40],
        merkle_branch: vec![],
        version: 0x2000_0000,
        nbits: 0x1d00_ffff,
        ntime: 1000,
        clean_jobs: true,
        version_mask: 0x1fff_e000,
        extranonce_size: None,
        merkle_root: None,
        step: Default::default(),
    };
    let good = encode_shares(&[share(1), share(2)]);
    let mut wrong_magic = good.clone();
    wrong_magic[..4].copy_from_slice(b"XXXX");
    let truncated = good[..good.len() - 10].to_vec();
    // A good batch with one corrupt record: a malformed verdict, not a dead letter.
    let mut corrupt = encode_shares(&[share(3), share(4)]).to_vec();
    corrupt[16 + 128 + 8] = 9; // record 2: kind 9
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"not a batch at all".to_vec()),
        ("magic", wrong_magic),
        ("truncated", truncated),
        ("job", encode_job(&job)),
        ("empty", Vec::new()),
    ];
    let p: BaseProducer = env.client_config().create().unwrap();
    let topic = env.topic("shares");
    let send = |key: &str, payload: &[u8]| {
        p.send(BaseRecord::to(&topic).key(key).payload(payload))
            .map_err(|(e, _)| e)
            .unwrap();
    };
    send("k", &good);
    for (k, payload) in &bad {
        send(k, payload);
    }
    send("k", &corrupt);
    // The jobs topic: a share batch, garbage, and jobs that decode but cannot be used
    // (negative nbits; nbits 0, a zero network target no header can meet), between two
    // good jobs.
    let mut negative = job.clone();
    negative.job_id = "neg".into();
    negative.nbits = 0x1d80_ffff;
    let mut zero = job.clone();
    zero.job_id = "zero".into();
    zero.nbits = 0;
    let bad_jobs: Vec<(&str, Vec<u8>)> = vec![
        ("job-is-shares", good.clone()),
        ("job-garbage", b"{\"job\": 1}".to_vec()),
        ("job-negative-nbits", encode_job(&negative)),
        ("job-zero-nbits", encode_job(&zero)),
    ];
    let jobs_topic = env.topic("jobs");
    let mut other = job.clone();
    other.job_id = "other".into();
    other.clean_jobs = false;
    p.send(
        BaseRecord::to(&jobs_topic)
            .key("j")
            .payload(&encode_job(&job)),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    for (k, payload) in &bad_jobs {
        p.send(BaseRecord::to(&jobs_topic).key(*k).payload(payload))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.send(
        BaseRecord::to(&jobs_topic)
            .key("other")
            .payload(&encode_job(&other)),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    // A share of the good job after the bad ones: the jobs reader went on past them.
    let mut on_other = share(5);
    on_other.payload[16..21].copy_from_slice(b"other");
    on_other.job_id_len = 5;
    send("k", &encode_shares(&[on_other]));
    p.flush(Duration::from_secs(30)).unwrap();

    let mut node = env.node("node.log");
    let dead = env.read_messages(
        &env.topic("dead-letter"),
        bad.len() + bad_jobs.len(),
        Duration::from_secs(60),
    );
    assert_eq!(
        dead.len(),
        bad.len() + bad_jobs.len(),
        "dead letters; node log:\n{}",
        node.log_text()
    );
    for (key, payload, headers) in &dead {
        let key = String::from_utf8_lossy(key).to_string();
        let (source, sent) = match bad.iter().find(|(k, _)| *k == key) {
            Some((_, sent)) => (&topic, sent),
            None => {
                let (_, sent) = bad_jobs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .expect("a key we sent");
                (&jobs_topic, sent)
            }
        };
        assert_eq!(payload, sent, "{key}: the original bytes are kept");
        assert!(!headers["error"].is_empty(), "{key}: error header");
        assert_eq!(&headers["source_topic"], source, "{key}");
        assert!(headers["source_offset"].parse::<i64>().is_ok(), "{key}");
        eprintln!("{key}: {}", headers["error"]);
        if key == "job-zero-nbits" {
            assert!(
                headers["error"].contains("zero network target"),
                "{key}: {}",
                headers["error"]
            );
        }
    }
    let v = env.receive(5, 60, &[]);
    let (v, _) = by_id(&v);
    assert_eq!(v[&5]["status"], "low_difficulty", "{}", v[&5]);
    assert_eq!(v[&1]["status"], "unknown_job");
    assert_eq!(v[&3]["status"], "unknown_job");
    assert_eq!(v[&4]["status"], "malformed");

    node.signal("TERM");
    assert!(
        node.wait_for(Duration::from_secs(10)).is_some(),
        "{}",
        node.log_text()
    );
    // The dead letters' offsets are committed like the rest: the partitions moved on.
    let (committed, ends) = env.committed_and_end();
    assert_eq!(committed, ends, "node log:\n{}", node.log_text());
}
