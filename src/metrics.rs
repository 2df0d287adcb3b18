//! Prometheus metrics of the validator node, served as text on `metrics.listen` at `/metrics`,
//! with `/healthz` beside it. The HTTP side is a few lines on tokio: two fixed paths, GET
//! only, one response per connection.

use crate::model::Status;
use prometheus::{
    Counter, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Metrics {
    pub registry: Registry,
    pub shares: IntCounterVec,
    pub batches: IntCounter,
    pub batch_shares: Histogram,
    pub batch_latency: Histogram,
    pub backend_busy: Counter,
    pub dead_letters: IntCounter,
    pub dead_letters_cut: IntCounter,
    pub replies_refused: IntCounter,
    pub delivery_retries: IntCounter,
    pub jobs_reader_rebuilds: IntCounter,
    pub rebuilt_shares: IntCounter,
    /// Batches a GPU or FPGA backend failed and the CPU redid
    /// ([`crate::backend::fallback::FALLBACK_BATCHES`], read at each scrape).
    pub fallback_batches: IntCounter,
    pub jobs: IntGauge,
    pub job_log_bytes: IntGauge,
    /// Entries of the duplicate sets, per validation lane.
    pub duplicate_entries: IntGaugeVec,
    pub inflight: IntGauge,
    /// Messages behind the end of each held share partition, by topic and partition.
    pub consumer_lag: IntGaugeVec,
    /// 1 for each partition the node holds that stopped moving on (see `stalls`).
    pub partition_stalled: IntGaugeVec,
    /// Share partitions held now.
    pub partitions_held: IntGauge,
    /// 1 while the configured backend is in service, 0 once it fell back to the CPU.
    pub backend_in_service: IntGaugeVec,
    /// Job messages the jobs reader took (usable ones; bad ones are dead letters).
    pub jobs_received: IntCounter,
    /// The Kafka timestamp of the newest job taken, in seconds since the epoch.
    pub last_job_timestamp: prometheus::Gauge,
    /// zookeeper mode: the session is connected, this node leads, the members it sees.
    pub zookeeper_connected: IntGauge,
    pub zookeeper_leader: IntGauge,
    pub zookeeper_members: IntGauge,
    /// The stalled partitions with their reasons, for `/healthz` (empty when all move on).
    pub stalls: std::sync::Mutex<Vec<String>>,
    /// False once shutdown has begun (`/healthz` then answers 503).
    pub healthy: AtomicBool,
    /// True once the node has its clients, its jobs reader and its place in the group, and
    /// fetches shares: before that a stop has nothing to drain or commit.
    pub started: AtomicBool,
    /// Why the node is not validating now, for `/readyz` (empty when it is).
    pub not_ready: std::sync::Mutex<Vec<String>>,
}

pub(crate) fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique and valid");
    c
}

pub(crate) fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    reg(r, IntCounter::new(name, help).expect("valid"))
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    reg(r, IntGauge::new(name, help).expect("valid"))
}

/// A gauge per value of `labels`.
fn gauges(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    reg(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid"),
    )
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    reg(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid"),
    )
}

/// A gauge per share partition, labelled with the shares topic and the partition.
fn partition_gauges(r: &Registry, name: &str, help: &str) -> IntGaugeVec {
    gauges(r, name, help, &["topic", "partition"])
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        // What Prometheus' conventions expect of every exporter: the build, and the process
        // (CPU seconds, resident memory, open file descriptors, start time; Linux only).
        let build = gauges(
            &r,
            "sharecheck_build_info",
            "The running build: always 1, with its version",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("the process collector registers once per registry");
        let shares = reg(
            &r,
            IntCounterVec::new(
                Opts::new("sharecheck_shares_total", "Verdicts produced, by status"),
                &["status"],
            )
            .expect("valid"),
        );
        for s in Status::ALL {
            shares.with_label_values(&[s.as_str()]);
        }
        Metrics {
            shares,
            batches: counter(&r, "sharecheck_batches_total", "Batches validated"),
            batch_shares: histogram(
                &r,
                "sharecheck_batch_shares",
                "Shares per batch",
                vec![1.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 8192.0, 16384.0, 65536.0],
            ),
            batch_latency: histogram(
                &r,
                "sharecheck_batch_latency_seconds",
                "From the first share message of a batch fetched to all its verdicts acknowledged",
                vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0],
            ),
            backend_busy: reg(
                &r,
                Counter::new(
                    "sharecheck_backend_busy_seconds_total",
                    "Time the backend spent hashing, summed over the validation lanes",
                )
                .expect("valid"),
            ),
            dead_letters: counter(&r, "sharecheck_dead_letters_total", "Messages sent to the dead-letter topic"),
            dead_letters_cut: counter(&r, "sharecheck_dead_letters_cut_total", "Dead letters whose payload was cut to fit the producer's and broker's \
                     size limits, or dropped for a reference when the broker refused it"),
            replies_refused: counter(&r, "sharecheck_replies_refused_total", "Share messages whose reply_to route the node refused (not allowed, missing topic or partition); their verdicts went to the verdicts topic"),
            delivery_retries: counter(&r, "sharecheck_delivery_retries_total", "Verdict messages produced again after a failed delivery"),
            jobs_reader_rebuilds: counter(&r, "sharecheck_jobs_reader_rebuilds_total", "Times the jobs reader's client was rebuilt after it stopped fetching while behind the jobs topic"),
            rebuilt_shares: counter(&r, "sharecheck_rebuilt_shares_total", "Shares replayed into the duplicate sets of gained partitions"),
            fallback_batches: counter(&r, "sharecheck_backend_fallback_batches_total", "Batches the configured backend failed and the CPU redid (the backend is then out of service)"),
            jobs: gauge(&r, "sharecheck_jobs_cached", "Jobs held from the jobs topic"),
            duplicate_entries: gauges(
                &r,
                "sharecheck_duplicate_entries",
                "Entries of the duplicate sets of a lane's partitions (about 80 bytes each; \
                 capped per partition by validation.max_seen_entries)",
                &["lane"],
            ),
            job_log_bytes: gauge(
                &r,
                "sharecheck_job_log_bytes",
                "Bytes of coinbase parts, merkle branches and ids the jobs held hold",
            ),
            inflight: gauge(&r, "sharecheck_inflight_batches", "Batches between fetch and acknowledgement"),
            consumer_lag: partition_gauges(&r, "sharecheck_consumer_lag_messages", "Messages behind the end of each held share partition (librdkafka statistics)"),
            partition_stalled: partition_gauges(&r, "sharecheck_partition_stalled", "1 while a held share partition does not move on: halted, or its \
                         committable offset held back longer than kafka.stall_timeout_s"),
            partitions_held: gauge(&r, "sharecheck_partitions_held", "Share partitions this node holds now"),
            backend_in_service: gauges(
                &r,
                "sharecheck_backend_in_service",
                "1 while the configured backend validates, 0 once it failed and the CPU redoes \
                 its batches",
                &["backend"],
            ),
            jobs_received: counter(&r, "sharecheck_jobs_received_total", "Usable job messages the jobs reader took from the jobs topic"),
            last_job_timestamp: reg(
                &r,
                prometheus::Gauge::new(
                    "sharecheck_last_job_timestamp_seconds",
                    "Kafka timestamp of the newest job taken (seconds since the epoch; 0 before the first)",
                )
                .expect("valid"),
            ),
            zookeeper_connected: gauge(&r, "sharecheck_zookeeper_connected", "zookeeper mode: 1 while the node's ZooKeeper session is connected (0 in kafka mode)"),
            zookeeper_leader: gauge(&r, "sharecheck_zookeeper_leader", "zookeeper mode: 1 while this node is the group's leader"),
            zookeeper_members: gauge(&r, "sharecheck_zookeeper_members", "zookeeper mode: members of the group, as the leader last read them (0 on the other nodes)"),
            stalls: std::sync::Mutex::new(Vec::new()),
            healthy: AtomicBool::new(true),
            started: AtomicBool::new(false),
            not_ready: std::sync::Mutex::new(vec!["starting".into()]),
            registry: r,
        }
    }

    pub fn render(&self) -> String {
        // The fallback wrapper counts in a static (it knows nothing of the node's metrics);
        // bring the counter up to it.
        let failed = crate::backend::fallback::FALLBACK_BATCHES.load(Ordering::Relaxed);
        let seen = self.fallback_batches.get();
        if failed > seen {
            self.fallback_batches.inc_by(failed - seen);
            // The backend is out of service from its first failure on.
            self.set_each_except(&self.backend_in_service, "backend", 0, &[] as &[&str]);
        }
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding to a Vec cannot fail");
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Metrics {
    /// Counts a batch in flight (`sharecheck_inflight_batches`) until the guard is dropped:
    /// taken when the batch is dispatched, dropped when its verdicts are acknowledged or it
    /// is abandoned, so the gauge returns to 0 whenever the node is drained.
    pub fn inflight_guard(&self) -> InflightGuard {
        self.inflight.inc();
        InflightGuard(self.inflight.clone())
    }
}

impl Metrics {
    /// Verdicts produced so far, all statuses together.
    pub fn shares_total(&self) -> u64 {
        Status::ALL
            .iter()
            .map(|s| self.shares.with_label_values(&[s.as_str()]).get())
            .sum()
    }

    /// The consumer lag of a held partition of `topic`.
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[topic, &partition.to_string()])
            .set(lag);
    }

    /// Drops a partition's consumer lag when the node gives the partition up: the last value
    /// would otherwise stay on /metrics, stale, for a partition another node now reads.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let labels = [topic, &partition.to_string()];
        let _ = self.consumer_lag.remove_label_values(&labels);
        let _ = self.partition_stalled.remove_label_values(&labels);
    }

    /// Sets every series of `v` to `value`, except those whose label `name` is in `keep`
    /// (matched by [`ToString`]).
    fn set_each_except<K: ToString>(&self, v: &IntGaugeVec, name: &str, value: i64, keep: &[K]) {
        use prometheus::core::Collector;
        for f in v.collect() {
            for m in f.get_metric() {
                let labels = m.get_label();
                let Some(key) = labels.iter().find(|l| l.name() == name) else {
                    continue;
                };
                if keep.iter().any(|k| k.to_string() == key.value()) {
                    continue;
                }
                // By name: a collected metric lists its labels sorted by name, not in the
                // order `with_label_values` takes them.
                let by_name: std::collections::HashMap<&str, &str> =
                    labels.iter().map(|l| (l.name(), l.value())).collect();
                let _ = v.get_metric_with(&by_name).map(|g| g.set(value));
            }
        }
    }

    /// Publishes the stalled partitions of `topic` (partition, reason): their gauge at 1,
    /// that of every other partition `held` (and of any that recovered) at 0, so that each
    /// held partition has a series, and the list for `/healthz`.
    pub fn set_stalls(&self, topic: &str, held: &[i32], stalls: &[(i32, String)]) {
        let stalled: Vec<i32> = stalls.iter().map(|(p, _)| *p).collect();
        self.set_each_except(&self.partition_stalled, "partition", 0, &stalled);
        for p in held.iter().filter(|p| !stalled.contains(p)) {
            self.partition_stalled
                .with_label_values(&[topic, &p.to_string()])
                .set(0);
        }
        for p in &stalled {
            self.partition_stalled
                .with_label_values(&[topic, &p.to_string()])
                .set(1);
        }
        *self.stalls.lock().unwrap_or_else(|e| e.into_inner()) = stalls
            .iter()
            .map(|(p, why)| format!("partition {p}: {why}"))
            .collect();
    }

    /// The consumer lag summed over the partitions librdkafka last reported (messages).
    pub fn lag_total(&self) -> i64 {
        use prometheus::core::Collector;
        self.consumer_lag
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_gauge().get_value() as i64)
            .sum()
    }
}

/// One batch in flight; see [`Metrics::inflight_guard`].
pub struct InflightGuard(IntGauge);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `/healthz`: 200 while the node runs and every partition it holds moves on; 503 with the
/// reason once shutdown has begun, or while a partition is stalled (each named with why).
fn health(m: &Metrics) -> (&'static str, &'static str, String) {
    if !m.healthy.load(Ordering::Relaxed) {
        return (
            "503 Service Unavailable",
            "text/plain",
            "shutting down\n".into(),
        );
    }
    let stalls = m.stalls.lock().unwrap_or_else(|e| e.into_inner());
    if stalls.is_empty() {
        return ("200 OK", "text/plain", "ok\n".into());
    }
    let mut body = String::from("stalled\n");
    for s in stalls.iter() {
        body.push_str(s);
        body.push('\n');
    }
    ("503 Service Unavailable", "text/plain", body)
}

/// `/readyz`: 200 while the node validates (it holds share partitions, its jobs reader has
/// caught up with the jobs topic, its backend is in service, and `/healthz` is 200); 503
/// with each reason otherwise. `/healthz` stays liveness: a node that is merely waiting for
/// partitions is alive, not ready.
fn ready(m: &Metrics) -> (&'static str, &'static str, String) {
    let (code, ctype, body) = health(m);
    if !code.starts_with("200") {
        return (code, ctype, body);
    }
    let why = m.not_ready.lock().unwrap_or_else(|e| e.into_inner());
    if why.is_empty() {
        return ("200 OK", "text/plain", "ready\n".into());
    }
    let mut body = String::from("not ready\n");
    for w in why.iter() {
        body.push_str(w);
        body.push('\n');
    }
    ("503 Service Unavailable", "text/plain", body)
}

/// An HTTP response: status line, content type, body.
pub type Response = (&'static str, &'static str, String);

/// What a metrics listener serves: the answer to a GET of each path it knows.
pub trait Endpoint: Send + Sync + 'static {
    /// None: not a path of this endpoint (404).
    fn get(&self, path: &str) -> Option<Response>;
    /// The paths, for the 404 answer.
    fn paths(&self) -> &'static str;
}

impl Endpoint for Metrics {
    fn get(&self, path: &str) -> Option<Response> {
        Some(match path {
            "/metrics" => prometheus_text(self.render()),
            "/healthz" => health(self),
            "/readyz" => ready(self),
            _ => return None,
        })
    }

    fn paths(&self) -> &'static str {
        "/metrics, /healthz or /readyz"
    }
}

/// A `/metrics` answer.
pub fn prometheus_text(body: String) -> Response {
    ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
}

/// Serves `/metrics`, `/healthz` and `/readyz` on an already bound listener until the task
/// is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    serve_endpoint(listener, metrics).await
}

/// Serves `e` on an already bound listener until the task is dropped.
pub async fn serve_endpoint<E: Endpoint>(listener: tokio::net::TcpListener, e: Arc<E>) {
    // A bounded number of connections at once: a client that opens many and says nothing
    // holds at most this many tasks (each for at most the read deadline); beyond it new
    // connections are closed at once.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(sock);
            continue;
        };
        let e = e.clone();
        tokio::spawn(async move {
            answer(sock, e.as_ref()).await;
            drop(permit);
        });
    }
}

/// Connections the listener serves at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request head, and to take the answer.
const IO_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// One request: a GET of one of the endpoint's paths.
async fn answer<E: Endpoint>(mut sock: tokio::net::TcpStream, e: &E) {
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    // Read the request head (bounded, and with a deadline so a silent client cannot hold the
    // task).
    let read = tokio::time::timeout(IO_DEADLINE, async {
        while n < buf.len() {
            match sock.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    if read.is_err() {
        return;
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (code, ctype, body) = match (method, e.get(path)) {
        ("GET", Some(r)) => r,
        ("GET", None) => (
            "404 Not Found",
            "text/plain",
            format!("try {}\n", e.paths()),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let resp = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A client that does not read its answer is given up after the deadline.
    let _ = tokio::time::timeout(IO_DEADLINE, async {
        let _ = sock.write_all(resp.as_bytes()).await;
        let _ = sock.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn request(addr: std::net::SocketAddr, text: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(text.as_bytes()).await;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    /// GET only; 50 clients that connect and say nothing do not keep a probe from its
    /// answer; connections beyond the limit are closed at once instead of held.
    #[tokio::test]
    async fn the_listener_answers_get_only_and_bounds_its_connections() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve(l, Arc::new(Metrics::new())));
        let mut idle = Vec::new();
        for _ in 0..50 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let ok = request(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("ok\n"),
            "{ok}"
        );
        let post = request(addr, "POST /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        for _ in 0..(MAX_CONNECTIONS - 50) {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // Every slot is held by a silent client now: the next one is closed unanswered.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let refused = request(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(refused, "", "beyond the limit");
        drop(idle);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let again = request(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    }

    fn inflight(m: &Metrics) -> String {
        m.render()
            .lines()
            .find(|l| l.starts_with("sharecheck_inflight_batches "))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn readiness_needs_health_and_no_reason() {
        let m = Metrics::new();
        let (code, _, body) = ready(&m);
        assert!(
            code.starts_with("503") && body == "not ready\nstarting\n",
            "{body}"
        );
        *m.not_ready.lock().unwrap() = vec!["no share partition held".into(), "x".into()];
        let (code, _, body) = ready(&m);
        assert!(code.starts_with("503"));
        assert_eq!(body, "not ready\nno share partition held\nx\n");
        m.not_ready.lock().unwrap().clear();
        assert_eq!(ready(&m).2, "ready\n");
        assert!(ready(&m).0.starts_with("200"));
        m.set_stalls("t", &[3], &[(3, "offset 7 has waited 61 s".into())]);
        let (code, _, body) = ready(&m);
        assert!(
            code.starts_with("503") && body.starts_with("stalled"),
            "{body}"
        );
        let stalled = |m: &Metrics| {
            m.render()
                .lines()
                .find(|l| l.starts_with("sharecheck_partition_stalled{"))
                .map(str::to_string)
        };
        assert_eq!(
            stalled(&m).as_deref(),
            Some(r#"sharecheck_partition_stalled{partition="3",topic="t"} 1"#)
        );
        m.set_stalls("t", &[3], &[]);
        assert_eq!(
            stalled(&m).as_deref(),
            Some(r#"sharecheck_partition_stalled{partition="3",topic="t"} 0"#),
            "a partition that moves on again reads 0"
        );
        m.healthy.store(false, Ordering::Relaxed);
        assert_eq!(ready(&m).2, "shutting down\n");
    }

    #[test]
    fn inflight_gauge_follows_dispatch_and_completion() {
        let m = Metrics::new();
        assert_eq!(inflight(&m), "sharecheck_inflight_batches 0");
        let a = m.inflight_guard();
        let b = m.inflight_guard();
        assert_eq!(inflight(&m), "sharecheck_inflight_batches 2");
        drop(a);
        assert_eq!(inflight(&m), "sharecheck_inflight_batches 1");
        // Completed on another thread, as the node's delivery tasks do.
        std::thread::spawn(move || drop(b)).join().unwrap();
        assert_eq!(inflight(&m), "sharecheck_inflight_batches 0");
    }

    #[test]
    fn fallback_counter_follows_the_fallback_wrapper() {
        use crate::backend::fallback::FALLBACK_BATCHES;
        let value = |m: &Metrics| -> u64 {
            m.render()
                .lines()
                .find_map(|l| l.strip_prefix("sharecheck_backend_fallback_batches_total "))
                .and_then(|v| v.parse().ok())
                .expect("the counter is exported")
        };
        let m = Metrics::new();
        let before = value(&m);
        FALLBACK_BATCHES.fetch_add(2, Ordering::Relaxed);
        let after = value(&m);
        // Other tests in this process may fail batches meanwhile: at least ours, at most all.
        assert!(after >= before + 2, "{before} -> {after}");
        assert!(after <= FALLBACK_BATCHES.load(Ordering::Relaxed));
    }
}
