//! `sharecheck stratum`: a Stratum V1 gateway. Miners connect to it; it hands each session
//! a unique extranonce1, sends the jobs of the jobs topic and the session's difficulty,
//! publishes every mining.submit as a share to the shares topic, and answers the miner with
//! the node's verdict, which comes back on this gateway's own reply route
//! ([`crate::client`]). Every submit's outcome goes to the share log topic for payouts.
//!
//! - [`protocol`]: the JSON-RPC lines and the error codes.
//! - [`session`]: one connection.
//! - [`feed`]: the jobs topic to the sessions.
//! - [`miner`]: a client that really mines, for tests and `sharecheck mine`.

pub mod feed;
pub mod load;
pub mod metrics;
pub mod miner;
pub mod protocol;
pub mod session;
pub mod vardiff;

use crate::client::{Client, ClientError, ClientOptions};
use crate::config::Config;
use crate::kafka::producer_config;
use crate::kafka::reply::Route;
use crate::model::Status;
use crate::wire::binary::ShareRecord;
use metrics::Counters;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What every session shares.
pub struct Gateway {
    pub cfg: crate::config::StratumConfig,
    pub en1_size: usize,
    pub en2_size: usize,
    /// The jobs' version-rolling mask: what mining.configure may grant.
    pub version_mask: u32,
    client: Client,
    sharelog: Option<(FutureProducer, String)>,
    next_session: AtomicU64,
    pub jobs: feed::Current,
    pub counters: Counters,
}

/// A submit on its way to the node: what its reply and share log line need.
pub struct Submitted {
    pub id: Value,
    pub worker: String,
    pub job_id: String,
    pub extranonce1: String,
    pub difficulty: f64,
    /// When the submit was read.
    pub at: std::time::Instant,
}

impl Gateway {
    /// extranonce1 of a new session: this gateway's instance byte, then a counter.
    pub fn next_extranonce1(&self) -> Vec<u8> {
        let n = self
            .next_session
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes();
        let mut en1 = vec![self.cfg.instance];
        en1.extend_from_slice(&n[8 - (self.en1_size - 1)..]);
        en1
    }

    /// Validates a share through the node; the reply line for the miner.
    async fn validate(&self, rec: ShareRecord, sub: &Submitted, counted: &AtomicU64) -> String {
        let v = match self.client.submit(rec).await {
            Ok(v) => v,
            Err(e) => {
                self.counters.no_verdict.inc();
                self.counters.rejected(protocol::OTHER);
                let why = match e {
                    ClientError::Timeout(_) => "No verdict in time; submit again".to_string(),
                    e => format!("Share not validated: {e}"),
                };
                return protocol::err(&sub.id, protocol::OTHER, &why);
            }
        };
        self.log_share(sub, &v);
        self.counters
            .submit_seconds
            .observe(sub.at.elapsed().as_secs_f64());
        match protocol::submit_error(v.status) {
            None => {
                counted.fetch_add(1, Ordering::Relaxed);
                self.counters.accepted.inc();
                if v.status == Status::Block {
                    self.counters.blocks.inc();
                    tracing::info!(
                        worker = sub.worker,
                        hash = v.hash.map(protocol::hex).unwrap_or_default(),
                        "block found"
                    );
                }
                protocol::ok(&sub.id, json!(true))
            }
            Some((code, why)) => {
                self.counters.rejected(code);
                protocol::err(&sub.id, code, why)
            }
        }
    }

    /// One share log line, keyed by worker; not waited for (a failure is counted).
    fn log_share(&self, sub: &Submitted, v: &crate::model::Verdict) {
        let Some((producer, topic)) = &self.sharelog else {
            return;
        };
        let line = json!({
            "time_ms": crate::kafka::now_ms(),
            "worker": sub.worker,
            "extranonce1": sub.extranonce1,
            "job_id": sub.job_id,
            "difficulty": sub.difficulty,
            "status": v.status.as_str(),
            "achieved": v.difficulty,
            "hash": v.hash.map(protocol::hex),
            "block": v.status == Status::Block,
        })
        .to_string();
        let rec = FutureRecord::to(topic)
            .payload(line.as_bytes())
            .key(sub.worker.as_bytes());
        if producer.send_result(rec).is_err() {
            self.counters.sharelog_failed.inc();
        }
    }
}

/// Runs the gateway until Ctrl-C or SIGTERM.
pub async fn run(cfg: &Config) -> anyhow::Result<()> {
    let sc = &cfg.stratum;
    anyhow::ensure!(
        cfg.jobs.extranonce1_size >= 2,
        "the gateway needs jobs.extranonce1_size ≥ 2 (one byte names the gateway, the rest \
         the session)"
    );
    let route = Route {
        topic: cfg.kafka.topics.replies.clone(),
        partition: Some(sc.reply_partition()),
    };
    let mut opts = ClientOptions::new(route.clone());
    opts.timeout = Duration::from_millis(sc.verdict_timeout_ms);
    let client = Client::connect(&cfg.kafka, opts)?;
    let sharelog = if !sc.sharelog {
        None
    } else {
        let p: FutureProducer = producer_config(&cfg.kafka, "sharecheck-stratum")
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create the share log producer: {e}"))?;
        Some((p, cfg.kafka.topics.sharelog.clone()))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let fit = feed::Fit {
        slot: cfg.jobs.extranonce1_size + cfg.jobs.extranonce2_size,
        mask: cfg.jobs.version_mask,
    };
    let jobs = feed::start(&cfg.kafka, fit, stop.clone())?;
    let listener = tokio::net::TcpListener::bind(&sc.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", sc.listen))?;
    let gw = Arc::new(Gateway {
        cfg: sc.clone(),
        en1_size: cfg.jobs.extranonce1_size,
        en2_size: cfg.jobs.extranonce2_size,
        version_mask: cfg.jobs.version_mask,
        client,
        sharelog,
        // Sessions of a restarted gateway get other extranonce1s than its last run's.
        next_session: AtomicU64::new(rand::random::<u64>()),
        jobs,
        counters: Counters::default(),
    });
    tracing::info!(
        listen = %listener.local_addr()?,
        reply_to = route.header_value(),
        instance = sc.instance,
        "stratum gateway listening"
    );
    if !sc.metrics_listen.is_empty() {
        let l = tokio::net::TcpListener::bind(&sc.metrics_listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on stratum.metrics_listen = {:?} ({e}); choose a free \
                     address or set it to \"\" to turn metrics off",
                    sc.metrics_listen
                )
            })?;
        tracing::info!("stratum metrics on http://{}/metrics", l.local_addr()?);
        let counters = gw.clone();
        tokio::spawn(crate::metrics::serve_endpoint(
            l,
            Arc::new(GatewayMetrics(counters)),
        ));
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(sc.max_connections));
    let mut report = tokio::time::interval(Duration::from_secs(60));
    report.tick().await;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((sock, _)) = accepted else { continue };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    gw.counters.refused_connections.inc();
                    continue;
                };
                let gw = gw.clone();
                tokio::spawn(async move {
                    gw.counters.connections.inc();
                    gw.counters.sessions.inc();
                    session::run(sock, gw.clone()).await;
                    gw.counters.sessions.dec();
                    drop(permit);
                });
            }
            _ = report.tick() => tracing::info!("stratum: {}", gw.counters.line()),
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    tracing::info!("stratum gateway stopped: {}", gw.counters.line());
    Ok(())
}

/// The gateway's counters as a metrics endpoint.
struct GatewayMetrics(Arc<Gateway>);

impl crate::metrics::Endpoint for GatewayMetrics {
    fn get(&self, path: &str) -> Option<crate::metrics::Response> {
        self.0.counters.get(path)
    }

    fn paths(&self) -> &'static str {
        self.0.counters.paths()
    }
}
