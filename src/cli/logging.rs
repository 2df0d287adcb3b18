//! The program's log: tracing to stderr, as text or JSON Lines, filtered by `log.level`
//! (or RUST_LOG), with librdkafka's repeated warnings and errors kept to one line per kind
//! and interval ([`QuietRepeats`]).

use sharecheck::config::{Config, LogFormat};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::{Event, Level, Metadata};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// A librdkafka line of one kind is shown at most once in this long.
const REPEAT_EVERY: Duration = Duration::from_secs(30);

pub fn init_logging(cfg: &Config) -> anyhow::Result<()> {
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .map_err(|e| anyhow::anyhow!("log.level {:?}: {e}", cfg.log.level))?;
    // The ZooKeeper client logs every connection at info; sharecheck logs what matters.
    if std::env::var_os("RUST_LOG").is_none() && !cfg.log.level.contains("zookeeper_client") {
        filter = filter.add_directive("zookeeper_client=warn".parse()?);
    }
    // Colours only on a terminal: a log redirected to a file or a journal stays plain text.
    let out = fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let quiet = QuietRepeats::new(REPEAT_EVERY);
    let r = match cfg.log.format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(out.json().with_filter(quiet))
            .try_init(),
        LogFormat::Text => tracing_subscriber::registry()
            .with(filter)
            .with(out.with_filter(quiet))
            .try_init(),
    };
    r.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// Lets a librdkafka warning or error through only when no line of the same kind (its text
/// with every number taken out: brokers, ports, counts, milliseconds) went through in the
/// last `every`. With a broker away, each client retries each broker several times a
/// second and logs every try; the first line says what is wrong, the others bury the node's
/// own lines. Everything else passes untouched.
pub struct QuietRepeats {
    every: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

/// Kinds remembered at most; beyond that the memory starts again (a flood of distinct
/// lines is shown, not stored).
const MAX_KINDS: usize = 1024;

impl QuietRepeats {
    pub fn new(every: Duration) -> QuietRepeats {
        QuietRepeats {
            every,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line of `kind` goes out `now`.
    fn allow(&self, kind: String, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = last.get(&kind) {
            if now.duration_since(*t) < self.every {
                return false;
            }
        }
        if last.len() >= MAX_KINDS {
            last.clear();
        }
        last.insert(kind, now);
        true
    }
}

/// The kind of a line: its text with each run of digits replaced by `#`.
fn kind(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// The message and, for lines that came through the `log` crate (rdkafka logs that way),
/// their real target.
#[derive(Default)]
struct Fields {
    message: String,
    log_target: Option<String>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "log.target" => self.log_target = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

fn from_librdkafka(target: &str) -> bool {
    target == "librdkafka" || target == "rdkafka" || target.starts_with("rdkafka::")
}

impl<S> Filter<S> for QuietRepeats {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        let meta = event.metadata();
        // Only warnings and errors (a more verbose level compares greater).
        if *meta.level() > Level::WARN {
            return true;
        }
        let bridged = meta.target() == "log";
        if !bridged && !from_librdkafka(meta.target()) {
            return true;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        if bridged && !f.log_target.as_deref().is_some_and(from_librdkafka) {
            return true;
        }
        self.allow(kind(&f.message), Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_that_differ_only_in_numbers_are_one_kind() {
        let a = "FAIL [thrd:127.0.0.1:19999/bootstrap]: Connect to ipv4#127.0.0.1:19999 \
                 failed: Connection refused (after 0ms in state CONNECT)";
        let b = "FAIL [thrd:10.0.0.7:9092/bootstrap]: Connect to ipv4#10.0.0.7:9092 \
                 failed: Connection refused (after 12ms in state CONNECT)";
        assert_eq!(kind(a), kind(b));
        assert_ne!(
            kind(a),
            kind("Global error: AllBrokersDown: 1/1 brokers are down")
        );
    }

    #[test]
    fn a_kind_is_shown_once_per_interval() {
        let q = QuietRepeats::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert!(q.allow("a".into(), t0));
        assert!(!q.allow("a".into(), t0 + Duration::from_secs(1)));
        assert!(q.allow("b".into(), t0 + Duration::from_secs(1)));
        assert!(!q.allow("a".into(), t0 + Duration::from_secs(29)));
        assert!(q.allow("a".into(), t0 + Duration::from_secs(31)));
    }
}
