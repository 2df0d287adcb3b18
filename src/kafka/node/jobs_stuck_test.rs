//! The jobs reader against a real broker (the one scripts/kafka.sh starts, or
//! SHARECHECK_TEST_BROKERS): a reader whose client stops fetching is given a new one, and the
//! batches waiting on it go on. A paused consumer stands for librdkafka's stuck fetcher: it
//! is a real client that delivers nothing.

use super::*;
use crate::config::KafkaConfig;
use crate::model::Job;
use crate::wire::binary::encode_job;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

fn test_config() -> KafkaConfig {
    let brokers = std::env::var("SHARECHECK_TEST_BROKERS").unwrap_or_else(|_| {
        let port = std::env::var("KAFKA_PORT").unwrap_or_else(|_| "9092".into());
        format!("127.0.0.1:{port}")
    });
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("u{}-stuck-{:x}", std::process::id(), nanos & 0xffff_ffff);
    let mut k = KafkaConfig {
        brokers,
        ..Default::default()
    };
    k.topics.shares = format!("{name}.shares");
    k.topics.jobs = format!("{name}.jobs");
    k.topics.verdicts = format!("{name}.verdicts");
    k.topics.blocks = format!("{name}.blocks");
    k.topics.dead_letter = format!("{name}.dead-letter");
    k.topics.templates = format!("{name}.templates");
    k.topics.partitions = 1;
    k
}

fn job(id: &str) -> Job {
    Job {
        job_id: id.into(),
        prevhash: [7; 32],
        coinb1: vec![1; 40],
        coinb2: vec![2; 40],
        merkle_branch: vec![],
        version: 0x2000_0000,
        nbits: 0x1d00_ffff,
        ntime: 1000,
        clean_jobs: false,
        version_mask: 0,
        extranonce_size: None,
        merkle_root: None,
        step: Default::default(),
    }
}

#[test]
fn a_reader_that_stops_fetching_gets_a_new_client() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let k = test_config();
    rt.block_on(crate::kafka::create_topics(&k))
        .expect("create the test topics (is the broker up? scripts/services.sh up)");
    let producer: FutureProducer = crate::kafka::producer_config(&k, "stuck-test")
        .create()
        .unwrap();
    for i in 0..3 {
        let payload = encode_job(&job(&format!("j{i}")));
        let rec = FutureRecord::<[u8], [u8]>::to(&k.topics.jobs).payload(&payload);
        rt.block_on(producer.send(rec, Timeout::After(Duration::from_secs(30))))
            .map_err(|(e, _)| e)
            .expect("produce a job");
    }

    let consumer = jobs_client(&k, "stuck-reader", "jobs reader").unwrap();
    let ends = jobs_client(&k, "stuck-ends", "jobs end-offset client").unwrap();
    let dead = JobDeadLetters {
        producer: producer.clone(),
        topic: k.topics.dead_letter.clone(),
        limit: 1 << 20,
        runtime: rt.handle().clone(),
    };
    let log = Arc::new(JobLog::new(ends, &k.topics.jobs, vec![0], dead));
    log.assign(&consumer).unwrap();
    // Stuck from the start: assigned, and never fetching.
    consumer.pause(&consumer.assignment().unwrap()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::new());
    let limits = LogLimits {
        ttl_ms: i64::MAX / 4,
        max_jobs: 100,
        max_bytes: 1 << 20,
    };
    let reader = {
        let (log, stop, m, k) = (log.clone(), stop.clone(), metrics.clone(), k.clone());
        let rebuild = move || jobs_client(&k, "stuck-reader-2", "jobs reader");
        std::thread::spawn(move || log.read(consumer, &rebuild, &stop, limits, &m))
    };
    let query = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || log.query_ends(&stop))
    };

    // A batch asks for the jobs published before it, as the prepare stage does.
    let ticket = log.request_ends();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let _ = tx.send(log.catch_up(ticket, &stop));
        })
    };
    let limit = READER_STALL + Duration::from_secs(20);
    let caught_up = rx.recv_timeout(limit);
    stop.store(true, Ordering::Relaxed);
    for t in [reader, query, waiter] {
        let _ = t.join();
    }
    let _ = rt.block_on(crate::kafka::delete_topics(&k));
    assert_eq!(
        caught_up,
        Ok(true),
        "the batch still waited for the jobs after {limit:?}"
    );
    assert_eq!(metrics.jobs_reader_rebuilds.get(), 1);
    let ids: Vec<String> = log
        .state()
        .jobs
        .iter()
        .map(|(j, _)| j.job.job_id.clone())
        .collect();
    assert_eq!(ids, ["j0", "j1", "j2"]);
}
