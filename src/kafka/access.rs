//! A first contact with the brokers before any Kafka command. Brokers that cannot be reached,
//! or that refuse the TLS handshake or the SASL login, otherwise show as a flood of
//! librdkafka lines (every client retries every broker) and, tens of seconds later, an error
//! that may point elsewhere (a missing topic). The probe asks for metadata with its own logs
//! kept to itself and turns the outcome into one line within [`PROBE_WAIT`].

use super::base;
use crate::config::KafkaConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the probe waits for the brokers' answer or refusal.
const PROBE_WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Probe {
    refused: Mutex<Option<String>>,
    /// The last transport error (connection refused, name not resolved, ...).
    last_error: Mutex<Option<String>>,
}

impl Probe {
    fn note(&self, line: &str) {
        let l = line.to_ascii_lowercase();
        // A connection's own failure says more than librdkafka's "n/m brokers are down".
        if l.contains("failed") || l.contains("resolve") {
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(line.trim().to_string());
        }
        // Phrases of librdkafka's refusals (not "ssl" or "sasl" alone: they are in every
        // broker's name, sasl_ssl://host:port).
        let security = [
            "authentication",
            "ssl handshake",
            "certificate",
            "security.protocol",
        ]
        .iter()
        .any(|w| l.contains(w));
        if security {
            let mut r = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            r.get_or_insert_with(|| line.trim().to_string());
        }
    }
}

impl ClientContext for Probe {
    fn log(&self, _: RDKafkaLogLevel, _: &str, msg: &str) {
        self.note(msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if matches!(
            code,
            Some(RDKafkaErrorCode::Authentication) | Some(RDKafkaErrorCode::SSL)
        ) {
            let mut r = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            r.get_or_insert_with(|| reason.trim().to_string());
        } else {
            self.note(reason);
        }
    }
}

impl ConsumerContext for Probe {}

/// The TLS or SASL protocol `k` asks for (`kafka.client`'s `security.protocol`), if any.
pub fn secured_protocol(k: &KafkaConfig) -> Option<&str> {
    k.client
        .get("security.protocol")
        .map(String::as_str)
        .filter(|p| !p.eq_ignore_ascii_case("plaintext"))
}

/// librdkafka's ticket command with the renewal's error silenced: librdkafka's own
/// (`kinit -R … || kinit …`) tries to renew a cached ticket first, which fails, and prints
/// kinit's complaint, on every start with an empty cache. The second kinit's error, the one
/// that says why no ticket was had (no key for the principal in the keytab, a key the KDC
/// changed), still reaches stderr.
const KINIT_CMD: &str = "kinit -R -t \"%{sasl.kerberos.keytab}\" -k %{sasl.kerberos.principal} \
                         2>/dev/null || kinit -t \"%{sasl.kerberos.keytab}\" -k \
                         %{sasl.kerberos.principal}";

/// Kerberos (`sasl.mechanism = GSSAPI`) without a `sasl.kerberos.kinit.cmd` of the
/// config's own gets [`KINIT_CMD`].
pub(super) fn kerberos_defaults(k: &KafkaConfig, c: &mut ClientConfig) {
    let gssapi = k
        .client
        .get("sasl.mechanism")
        .is_some_and(|m| m.eq_ignore_ascii_case("GSSAPI"));
    if gssapi && !k.client.contains_key("sasl.kerberos.kinit.cmd") {
        c.set("sasl.kerberos.kinit.cmd", KINIT_CMD);
    }
}

/// librdkafka's refusal to make a client, with what to do when it names a SASL mechanism
/// this build lacks (GSSAPI needs the `gssapi` cargo feature and Debian's libsasl2-dev).
pub fn creation_error(e: KafkaError) -> anyhow::Error {
    let text = e.to_string();
    let hint = if text.contains("No provider for SASL mechanism GSSAPI") {
        " (this sharecheck is built without Kerberos: build it with `cargo build --release \
         --features gssapi`, which needs libsasl2-dev, and install libsasl2-modules-gssapi-mit; \
         docs/security.md)"
    } else {
        ""
    };
    anyhow::anyhow!("cannot create a Kafka client: {text}{hint}")
}

/// Ok once a broker answers; within [`PROBE_WAIT`] otherwise, an error naming the brokers'
/// reason when they refuse the handshake or the login (TLS or SASL configured), or that no
/// broker answered, with the last transport error.
pub fn check_access(k: &KafkaConfig) -> anyhow::Result<()> {
    let probe: BaseConsumer<Probe> = base(k, "sharecheck-probe")
        .create_with_context(Probe::default())
        .map_err(creation_error)?;
    let probe = std::sync::Arc::new(probe);
    // The metadata request in a thread of its own: librdkafka can hold it past its timeout
    // while it waits for a usable broker, and the refusal is what this is waiting for.
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let probe = probe.clone();
        std::thread::spawn(move || {
            let _ = tx.send(probe.fetch_metadata(None, PROBE_WAIT).is_ok());
        });
    }
    let t0 = Instant::now();
    while t0.elapsed() < PROBE_WAIT {
        let done = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(true) => return Ok(()),
            Ok(false) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => true,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => false,
        };
        // Error events reach the context only when the client is polled.
        let _ = probe.poll(Duration::ZERO);
        let refused = probe.context().refused.lock().map(|r| r.clone());
        if let Ok(Some(reason)) = refused {
            anyhow::bail!(
                "the brokers {} refused this client: {reason} (check kafka.client and \
                 kafka.secret_files, docs/security.md)",
                k.brokers
            );
        }
        if done {
            break;
        }
    }
    let last = probe.context().last_error.lock().map(|e| e.clone());
    let why = match last {
        Ok(Some(e)) => format!(": {e}"),
        _ => String::new(),
    };
    let hint = match secured_protocol(k) {
        Some(p) => format!("kafka.brokers and security.protocol = {p:?} right"),
        None => "kafka.brokers right (a TLS listener does not answer plaintext)".to_string(),
    };
    anyhow::bail!(
        "no Kafka broker at {} answered within {} s{why}; is Kafka running \
         (scripts/services.sh up) and {hint}?",
        k.brokers,
        PROBE_WAIT.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config asking for Kerberos (GSSAPI) on a port where nothing listens.
    fn gssapi_config() -> KafkaConfig {
        let mut k = KafkaConfig {
            brokers: "127.0.0.1:1".into(),
            ..KafkaConfig::default()
        };
        for (key, v) in [
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "GSSAPI"),
            ("sasl.kerberos.service.name", "kafka"),
            // No ticket is needed to make the client; kinit would look for a keytab.
            ("sasl.kerberos.kinit.cmd", "true"),
        ] {
            k.client.insert(key.into(), v.into());
        }
        k
    }

    #[test]
    #[cfg(not(feature = "gssapi"))]
    fn kerberos_without_the_feature_says_how_to_build_it() {
        let e = base(&gssapi_config(), "t")
            .create::<BaseConsumer>()
            .map_err(creation_error)
            .err()
            .expect("a build without gssapi has no GSSAPI provider");
        assert!(e.to_string().contains("--features gssapi"), "{e}");
    }

    #[test]
    fn kerberos_renewal_errors_are_silenced_unless_the_config_has_a_command() {
        let mut k = gssapi_config();
        k.client.remove("sasl.kerberos.kinit.cmd");
        let cmd = base(&k, "t")
            .get("sasl.kerberos.kinit.cmd")
            .map(str::to_string);
        let cmd = cmd.expect("a kinit command for GSSAPI");
        let (renew, get) = cmd.split_once("||").unwrap();
        assert!(
            renew.contains("kinit -R") && renew.contains("2>/dev/null"),
            "{cmd}"
        );
        assert!(
            !get.contains("2>"),
            "the error that says why is silenced: {cmd}"
        );
        // The config's own command is kept; other mechanisms get none.
        assert_eq!(
            base(&gssapi_config(), "t").get("sasl.kerberos.kinit.cmd"),
            Some("true")
        );
        k.client
            .insert("sasl.mechanism".into(), "SCRAM-SHA-512".into());
        assert_eq!(base(&k, "t").get("sasl.kerberos.kinit.cmd"), None);
    }

    #[test]
    #[cfg(feature = "gssapi")]
    fn kerberos_with_the_feature_makes_clients() {
        let c = base(&gssapi_config(), "t").create::<BaseConsumer>();
        assert!(c.is_ok(), "{:?}", c.err().map(creation_error));
    }
}
