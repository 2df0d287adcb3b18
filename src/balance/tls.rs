//! TLS to ZooKeeper (`balance.zookeeper_tls`): every session of a node, and `cluster
//! status`, connects to the servers' `secureClientPort` with TLS (rustls), checks the
//! server's certificate against `balance.zookeeper_ca_file` and the address it dials, and
//! shows a client certificate when `balance.zookeeper_cert_file` is set. Without it the
//! digest credentials and the group's data cross the network in clear.
//!
//! The client library retries a failed TLS handshake, or a SASL login it cannot start (no
//! Kerberos ticket), until the session timeout and then says only that it timed out; the
//! reason goes to its log, a line per retry. So a connect runs [`hearing`] the library's log
//! (a subscriber of its own for that attempt only: nothing printed), and a failed one says in
//! one line why ([`explain`]): an unknown CA, a certificate for another name, a server that
//! wants a client certificate, a port that does not speak TLS, no Kerberos ticket. When the
//! log said nothing, [`diagnose`] tries once more, quickly, failing at the first error.

use crate::config::BalanceConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;
use zookeeper_client::TlsOptions;

/// The TLS settings of a node's sessions, read from the files once.
#[derive(Clone)]
pub struct ZkTls {
    options: TlsOptions,
    ca_file: PathBuf,
    identity: bool,
}

impl std::fmt::Debug for ZkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS(CA {}", self.ca_file.display())?;
        if self.identity {
            write!(f, ", client certificate")?;
        }
        write!(f, ")")
    }
}

fn read(key: &str, path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("balance.{key}: cannot read {}: {e}", path.display()))
}

impl ZkTls {
    /// The TLS settings of `b`; None without `zookeeper_tls`. The files' PEM is parsed here,
    /// so a file without a usable certificate or key is an error at start.
    pub fn from_config(b: &BalanceConfig) -> anyhow::Result<Option<ZkTls>> {
        if !b.zookeeper_tls {
            return Ok(None);
        }
        let Some(ca_file) = &b.zookeeper_ca_file else {
            anyhow::bail!("balance.zookeeper_tls = true needs balance.zookeeper_ca_file");
        };
        let mut options = TlsOptions::new()
            .with_pem_ca(&read("zookeeper_ca_file", ca_file)?)
            .map_err(|e| {
                anyhow::anyhow!(
                    "balance.zookeeper_ca_file {}: no usable CA certificate ({e})",
                    ca_file.display()
                )
            })?;
        let identity = match (&b.zookeeper_cert_file, &b.zookeeper_key_file) {
            (Some(cert), Some(key)) => {
                let key_pem = crate::config::secrets::read_secret(key)
                    .map_err(|e| e.context("balance.zookeeper_key_file"))?;
                options = options
                    .with_pem_identity(&read("zookeeper_cert_file", cert)?, &key_pem)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "balance.zookeeper_cert_file {} / zookeeper_key_file {}: no usable \
                             certificate and private key ({e})",
                            cert.display(),
                            key.display()
                        )
                    })?;
                true
            }
            (None, None) => false,
            _ => anyhow::bail!(
                "balance.zookeeper_cert_file and balance.zookeeper_key_file go together"
            ),
        };
        Ok(Some(ZkTls {
            options,
            ca_file: ca_file.clone(),
            identity,
        }))
    }

    pub fn options(&self) -> TlsOptions {
        self.options.clone()
    }
}

/// Connects once more with the same settings, quickly and failing at the first error, and
/// says why no session came, from what the client library logs about it; None when it says
/// nothing (or the session comes this time).
pub async fn diagnose(addr: &str, auth: Option<&super::auth::ZkAuth>) -> Option<String> {
    let tls = auth.and_then(|a| a.tls());
    let mut c = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(4))
        .with_connection_timeout(Duration::from_secs(2))
        .with_fail_eagerly();
    if let Some(a) = auth {
        c = a.present(c);
    }
    let attempt = async move {
        match tls {
            Some(t) => c.with_tls(t.options()).secure_connect(addr).await,
            None => c.connect(addr).await,
        }
    };
    let (r, heard) = hearing(tokio::time::timeout(Duration::from_secs(5), attempt)).await;
    if matches!(r, Ok(Ok(_))) {
        return None;
    }
    Some(explain(&heard?, tls))
}

/// Runs `f` with the client library's log kept to itself (nothing of it printed) and
/// returns, beside `f`'s output, the first reason that log gave for a failed connection,
/// session or SASL login, raw, for [`explain`].
pub async fn hearing<F: std::future::Future>(f: F) -> (F::Output, Option<String>) {
    let reasons = Reasons::default();
    let subscriber = tracing_subscriber::registry().with(
        reasons.clone().with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("zookeeper_client", tracing::Level::DEBUG),
        ),
    );
    let out = tracing::instrument::WithSubscriber::with_subscriber(f, subscriber).await;
    let heard = reasons.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (out, heard)
}

/// How [`Reasons`] marks a SASL login the client could not start.
const SASL: &str = "sasl: ";

/// The first reason the client library logged for a failed connection or session ("fails
/// in connecting to X due to ...", "fails to establish session to X due to ..."), or SASL
/// login ("fail to open sasl session for X: ...", kept with [`SASL`] in front).
#[derive(Clone, Default)]
struct Reasons(Arc<Mutex<Option<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Reasons {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl Visit for Message {
            fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let why = match m.0.split_once(" due to ") {
            Some((_, why)) => Some(why.to_string()),
            None => {
                m.0.strip_prefix("fail to open sasl session for ")
                    .and_then(|rest| rest.split_once(": "))
                    .map(|(_, e)| format!("{SASL}{e}"))
            }
        };
        if let Some(why) = why {
            let mut first = self.0.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(why);
        }
    }
}

/// One line for the operator from the library's reason (rustls' error names, io errors,
/// the SASL mechanism's error).
pub fn explain(raw: &str, tls: Option<&ZkTls>) -> String {
    if let Some(e) = raw.strip_prefix(SASL) {
        return format!(
            "this client could not start its SASL login: {e} (with \
             balance.zookeeper_auth_scheme = \"kerberos\": is there a ticket, in KRB5CCNAME or \
             from a keytab in KRB5_CLIENT_KTNAME, and the realm in KRB5_CONFIG? \
             docs/security.md)"
        );
    }
    // An io::Error's Debug: `Custom { kind: InvalidData, error: InvalidCertificate(..) }`.
    let raw = raw
        .strip_prefix("Custom { kind: ")
        .and_then(|r| r.split_once("error: "))
        .map(|(_, e)| e.strip_suffix(" }").unwrap_or(e).trim_matches('"'))
        .unwrap_or(raw);
    let Some(t) = tls else {
        return if raw.contains("connection to server has lost") {
            format!(
                "the server closed the connection without answering ({raw}); if this port is \
                 ZooKeeper's TLS port (secureClientPort), set balance.zookeeper_tls = true and \
                 balance.zookeeper_ca_file"
            )
        } else {
            raw.to_string()
        };
    };
    let ca = t.ca_file.display();
    let why = if raw.contains("UnknownIssuer") || raw.contains("BadSignature") {
        format!("the server's certificate is not signed by a CA in balance.zookeeper_ca_file {ca}")
    } else if raw.contains("NotValidForName") {
        "the server's certificate does not name the host or address in balance.zookeeper"
            .to_string()
    } else if raw.contains("Expired") || raw.contains("NotValidYet") {
        "the server's certificate has expired or is not valid yet".to_string()
    } else if raw.contains("AlertReceived") {
        if t.identity {
            "the server refused this client's certificate (balance.zookeeper_cert_file: is \
             it signed by a CA the server trusts?)"
                .to_string()
        } else {
            "the server refused the handshake; it probably wants a client certificate \
             (ssl.clientAuth=need): set balance.zookeeper_cert_file and zookeeper_key_file"
                .to_string()
        }
    } else if raw.contains("InvalidContentType")
        || raw.contains("InvalidMessage")
        || raw.contains("CorruptMessage")
    {
        "the server does not speak TLS on this port (is it ZooKeeper's secureClientPort?)"
            .to_string()
    } else if raw.contains("handshake eof") {
        "the server closed the connection in the handshake (is the port ZooKeeper's \
         secureClientPort, or a plaintext one?)"
            .to_string()
    } else if raw.contains("ConnectionRefused") || raw.contains("Connection refused") {
        return format!("connection refused ({raw})");
    } else {
        return format!("TLS: {raw}");
    };
    format!("TLS handshake failed: {why} ({raw})")
}

#[cfg(test)]
impl ZkTls {
    /// Settings that name a CA file and no client certificate, for other modules' tests.
    pub(crate) fn test_only() -> ZkTls {
        ZkTls {
            options: TlsOptions::new(),
            ca_file: "/etc/zk/ca.pem".into(),
            identity: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(identity: bool) -> ZkTls {
        ZkTls {
            options: TlsOptions::new(),
            ca_file: "/etc/zk/ca.pem".into(),
            identity,
        }
    }

    /// What the client library logs when it cannot start a SASL login, heard and explained.
    #[tokio::test]
    async fn a_sasl_login_that_cannot_start_is_heard_and_explained() {
        let ((), heard) = hearing(async {
            tracing::warn!(
                target: "zookeeper_client::session",
                "fail to open sasl session for 10.0.0.7: internal mechanism error: GSS-API \
                 error: No credentials were supplied"
            );
            tracing::warn!(
                target: "zookeeper_client::session",
                "fails to establish session to 10.0.0.7:2181 due to later"
            );
        })
        .await;
        let heard = heard.expect("a reason heard");
        let why = explain(&heard, None);
        assert!(
            why.starts_with("this client could not start its SASL login"),
            "{why}"
        );
        assert!(why.contains("No credentials were supplied"), "{why}");
        assert!(why.contains("KRB5_CLIENT_KTNAME"), "{why}");
        assert!(!why.contains('\n'));
        // Other targets' lines are not the library's.
        let ((), none) =
            hearing(async { tracing::warn!(target: "sharecheck", "x due to y") }).await;
        assert_eq!(none, None);
    }

    #[test]
    fn handshake_errors_are_explained_in_one_line() {
        let t = tls(false);
        let e = explain(
            "Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }",
            Some(&t),
        );
        assert_eq!(
            e,
            "TLS handshake failed: the server's certificate is not signed by a CA in \
             balance.zookeeper_ca_file /etc/zk/ca.pem (InvalidCertificate(UnknownIssuer))"
        );
        let e = explain(
            "Custom { kind: UnexpectedEof, error: \"tls handshake eof\" }",
            Some(&t),
        );
        assert!(e.contains("plaintext one?) (tls handshake eof)"), "{e}");
        let e = explain(
            "Custom { kind: InvalidData, error: AlertReceived(BadCertificate) }",
            Some(&t),
        );
        assert!(e.contains("wants a client certificate"), "{e}");
        let e = explain(
            "Custom { kind: InvalidData, error: AlertReceived(BadCertificate) }",
            Some(&tls(true)),
        );
        assert!(e.contains("refused this client's certificate"), "{e}");
        let e = explain("connection to server has lost", None);
        assert!(e.contains("balance.zookeeper_tls = true"), "{e}");
        for e in [
            explain(
                "Custom { kind: InvalidData, error: InvalidContentType }",
                Some(&t),
            ),
            explain("odd", Some(&t)),
            explain("odd", None),
        ] {
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
