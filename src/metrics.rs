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
    pub delivery_retries: IntCounter,
    pub rebuilt_shares: IntCounter,
    /// Batches a GPU or FPGA backend failed and the CPU redid
    /// ([`crate::backend::fallback::FALLBACK_BATCHES`], read at each scrape).
    pub fallback_batches: IntCounter,
    pub jobs: IntGauge,
    pub inflight: IntGauge,
    pub consumer_lag: IntGaugeVec,
    /// False once shutdown has begun (`/healthz` then answers 503).
    pub healthy: AtomicBool,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique and valid");
    c
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
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
            batches: reg(
                &r,
                IntCounter::new("sharecheck_batches_total", "Batches validated").expect("valid"),
            ),
            batch_shares: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("sharecheck_batch_shares", "Shares per batch").buckets(
                        vec![1.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 8192.0, 16384.0, 65536.0],
                    ),
                )
                .expect("valid"),
            ),
            batch_latency: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "sharecheck_batch_latency_seconds",
                        "From the first share message of a batch fetched to all its verdicts acknowledged",
                    )
                    .buckets(vec![
                        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
                    ]),
                )
                .expect("valid"),
            ),
            backend_busy: reg(
                &r,
                Counter::new(
                    "sharecheck_backend_busy_seconds_total",
                    "Time the backend spent hashing, summed over the validation lanes",
                )
                .expect("valid"),
            ),
            dead_letters: reg(
                &r,
                IntCounter::new(
                    "sharecheck_dead_letters_total",
                    "Messages sent to the dead-letter topic",
                )
                .expect("valid"),
            ),
            delivery_retries: reg(
                &r,
                IntCounter::new(
                    "sharecheck_delivery_retries_total",
                    "Verdict messages produced again after a failed delivery",
                )
                .expect("valid"),
            ),
            rebuilt_shares: reg(
                &r,
                IntCounter::new(
                    "sharecheck_rebuilt_shares_total",
                    "Shares replayed into the duplicate sets of gained partitions",
                )
                .expect("valid"),
            ),
            fallback_batches: reg(
                &r,
                IntCounter::new(
                    "sharecheck_backend_fallback_batches_total",
                    "Batches the configured backend failed and the CPU redid (the backend is then out of service)",
                )
                .expect("valid"),
            ),
            jobs: reg(
                &r,
                IntGauge::new("sharecheck_jobs_cached", "Jobs held from the jobs topic")
                    .expect("valid"),
            ),
            inflight: reg(
                &r,
                IntGauge::new(
                    "sharecheck_inflight_batches",
                    "Batches between fetch and acknowledgement",
                )
                .expect("valid"),
            ),
            consumer_lag: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "sharecheck_consumer_lag",
                        "Messages behind the end of each share partition (librdkafka statistics)",
                    ),
                    &["partition"],
                )
                .expect("valid"),
            ),
            healthy: AtomicBool::new(true),
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

    /// Drops a partition's consumer lag when the node gives the partition up: the last value
    /// would otherwise stay on /metrics, stale, for a partition another node now reads.
    pub fn forget_partition(&self, partition: i32) {
        let _ = self
            .consumer_lag
            .remove_label_values(&[&partition.to_string()]);
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

/// Serves `/metrics` and `/healthz` on an already bound listener until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // Read the request head (bounded, and with a deadline so a silent client cannot
            // hold the task).
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
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
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (code, ctype, body) = match path {
                "/metrics" => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    m.render(),
                ),
                "/healthz" if m.healthy.load(Ordering::Relaxed) => {
                    ("200 OK", "text/plain", "ok\n".to_string())
                }
                "/healthz" => (
                    "503 Service Unavailable",
                    "text/plain",
                    "shutting down\n".to_string(),
                ),
                _ => (
                    "404 Not Found",
                    "text/plain",
                    "try /metrics or /healthz\n".to_string(),
                ),
            };
            let resp = format!(
                "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflight(m: &Metrics) -> String {
        m.render()
            .lines()
            .find(|l| l.starts_with("sharecheck_inflight_batches "))
            .unwrap_or_default()
            .to_string()
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
