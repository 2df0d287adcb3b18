//! The gateway's counters: logged every minute and at exit, and served as Prometheus text on
//! `stratum.metrics_listen` (`/metrics`; `/healthz` answers 200 while the gateway runs).

use super::protocol;
use crate::metrics::{counter, prometheus_text, reg, Endpoint, Response};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// What the gateway did.
pub struct Counters {
    registry: Registry,
    pub sessions: IntGauge,
    pub connections: IntCounter,
    pub refused_connections: IntCounter,
    pub accepted: IntCounter,
    pub blocks: IntCounter,
    /// Error replies to mining.submit, by code 20–25.
    rejected: IntCounterVec,
    pub no_verdict: IntCounter,
    pub rate_limited: IntCounter,
    pub long_lines: IntCounter,
    pub bad_requests: IntCounter,
    pub sharelog_failed: IntCounter,
    /// mining.submit to its reply, for the submits a node judged.
    pub submit_seconds: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters::new()
    }
}

impl Counters {
    pub fn new() -> Counters {
        let r = Registry::new();
        let p = "sharecheck_stratum_";
        let c = |name: &str, help: &str| counter(&r, &format!("{p}{name}"), help);
        let rejected = IntCounterVec::new(
            Opts::new(
                format!("{p}rejected_total"),
                "mining.submit answered with an error, by code (20 other, 21 stale or unknown \
                 job, 22 duplicate, 23 low difficulty, 24 unauthorized, 25 not subscribed)",
            ),
            &["code"],
        )
        .expect("valid");
        let latency = HistogramOpts::new(
            format!("{p}submit_seconds"),
            "mining.submit to its reply, for submits a node judged",
        )
        .buckets(vec![
            0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
        ]);
        Counters {
            sessions: reg(
                &r,
                IntGauge::new(format!("{p}sessions"), "Connections open now").expect("valid"),
            ),
            connections: c("connections_total", "Connections accepted"),
            refused_connections: c(
                "refused_connections_total",
                "Connections closed at once because stratum.max_connections were open",
            ),
            accepted: c(
                "accepted_total",
                "mining.submit answered true (accepted or block)",
            ),
            blocks: c("blocks_total", "Submits the node called a block"),
            rejected: reg(&r, rejected),
            no_verdict: c(
                "no_verdict_total",
                "Submits answered with error 20 because no verdict came within \
                 stratum.verdict_timeout_ms, or the broker refused the share",
            ),
            rate_limited: c(
                "rate_limited_total",
                "Submits over stratum.max_submits_per_s, answered with error 20",
            ),
            long_lines: c(
                "long_lines_total",
                "Request lines over stratum.max_line_bytes",
            ),
            bad_requests: c("bad_requests_total", "Request lines that are not JSON-RPC"),
            sharelog_failed: c(
                "sharelog_failed_total",
                "Share log lines librdkafka did not take",
            ),
            submit_seconds: reg(&r, Histogram::with_opts(latency).expect("valid")),
            registry: r,
        }
    }

    pub fn rejected(&self, code: i64) {
        let code = code.clamp(protocol::OTHER, protocol::NOT_SUBSCRIBED);
        self.rejected.with_label_values(&[&code.to_string()]).inc();
    }

    fn rejected_by(&self, code: i64) -> u64 {
        self.rejected.with_label_values(&[&code.to_string()]).get()
    }

    /// One line of everything, for the log.
    pub fn line(&self) -> String {
        let r: Vec<String> = (protocol::OTHER..=protocol::NOT_SUBSCRIBED)
            .map(|c| format!("{c}:{}", self.rejected_by(c)))
            .collect();
        format!(
            "sessions {} (connections {}, refused {}), accepted {}, blocks {}, rejected [{}], \
             no verdict {}, rate limited {}, long lines {}, bad requests {}, share log failures {}",
            self.sessions.get(),
            self.connections.get(),
            self.refused_connections.get(),
            self.accepted.get(),
            self.blocks.get(),
            r.join(" "),
            self.no_verdict.get(),
            self.rate_limited.get(),
            self.long_lines.get(),
            self.bad_requests.get(),
            self.sharelog_failed.get(),
        )
    }
}

impl Endpoint for Counters {
    fn get(&self, path: &str) -> Option<Response> {
        Some(match path {
            "/metrics" => {
                let mut buf = Vec::new();
                TextEncoder::new()
                    .encode(&self.registry.gather(), &mut buf)
                    .expect("text encoding to a Vec cannot fail");
                prometheus_text(String::from_utf8(buf).unwrap_or_default())
            }
            "/healthz" => ("200 OK", "text/plain", "ok\n".into()),
            _ => return None,
        })
    }

    fn paths(&self) -> &'static str {
        "/metrics or /healthz"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_and_log() {
        let c = Counters::new();
        c.accepted.inc();
        c.rejected(22);
        c.rejected(99);
        let (code, _, body) = c.get("/metrics").unwrap();
        assert_eq!(code, "200 OK");
        assert!(
            body.contains("sharecheck_stratum_accepted_total 1"),
            "{body}"
        );
        assert!(
            body.contains("sharecheck_stratum_rejected_total{code=\"22\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("sharecheck_stratum_rejected_total{code=\"25\"} 1"),
            "{body}"
        );
        assert!(c.line().contains("accepted 1"), "{}", c.line());
        assert!(c.get("/nope").is_none());
    }
}
