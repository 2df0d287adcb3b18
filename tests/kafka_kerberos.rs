//! Kafka with Kerberos: SASL GSSAPI over TLS, against a real MIT KDC (scripts/kdc.sh, a realm
//! of the test's own) and a broker of the test's own whose SASL_SSL listener takes GSSAPI
//! (`KAFKA_SECURITY=sasl_ssl KAFKA_KERBEROS=1 scripts/kafka.sh up`). The client settings are
//! the `client-kerberos.toml` the script writes, used as they are: `topics create`, `send`,
//! the node and `receive` authenticate with the keytab (librdkafka runs `kinit`), every share
//! gets its verdict, equal to `verify`'s. A principal the keytab has no key for, and a keytab
//! whose key the KDC has since changed, are refused in one line within seconds.
//!
//! Only in a build with Kerberos: `cargo test --features gssapi --test kafka_kerberos`
//! (scripts/test.sh runs it; it needs krb5-kdc, krb5-admin-server, krb5-user and
//! libsasl2-modules-gssapi-mit).
#![cfg(feature = "gssapi")]

mod kafka_support;
use kafka_support::kdc::Kdc;
use kafka_support::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn every_client_authenticates_by_kerberos_and_bad_keys_are_refused() {
    let kdc = Kdc::start();
    let realm_conf = kdc.dir().join("krb5.conf");
    let tls_port = free_port().to_string();
    let kdc_dir = kdc.dir();
    let broker = OwnBroker::start_with(
        "krb",
        &[
            ("KAFKA_SECURITY", "sasl_ssl"),
            ("KAFKA_SASL_SSL_PORT", &tls_port),
            ("KAFKA_KERBEROS", "1"),
            ("KAFKA_KDC_DIR", kdc_dir.to_str().unwrap()),
        ],
    );
    let client_toml = broker.dir.join("kafka/client-kerberos.toml");
    let secured = Secured::read(&client_toml);
    // Every client of this process and of the commands it runs finds the realm there, and
    // keeps its tickets in a cache of its own.
    let cache = broker.dir.join("krb5cc");
    std::env::set_var("KRB5_CONFIG", &realm_conf);
    std::env::set_var("KRB5CCNAME", format!("FILE:{}", cache.display()));

    // `topics create` runs here, through the listener, with the keytab.
    let mut env = Env::with_brokers(
        "krb",
        &format!("127.0.0.1:{tls_port}"),
        &format!(
            "[backend.batch]\nmax_shares = 64\nmax_wait_ms = 1\n{}",
            secured.fragment
        ),
    );
    env.client = secured.client.clone();

    let n = 2000;
    let file = env.gen("s.jsonl", &["--shares", &n.to_string(), "--seed", "5"]);
    let want = env.verify_statuses(&file);
    env.send(&file, &["--batch", "20"]);
    let node = env.node("node.log");
    let reader = env.reader(&env.topic("verdicts"));
    let (first, _) = first_verdicts(&reader, n, Duration::from_secs(120));
    assert_eq!(first.len(), n, "over Kerberos: {}", node.log_text());
    for (id, status) in &first {
        assert_eq!(status, &want[id], "share {id}");
    }
    assert!(env.receive(n, 60, &[]).len() >= n);
    // The first ticket came without a complaint from the renewal kinit tries first.
    let log = node.log_text();
    assert!(!log.contains("kinit:"), "kinit complained:\n{log}");
    drop(node);
    // The KDC issued the tickets: the client's TGT and a service ticket for the broker.
    let kdc_log = std::fs::read_to_string(kdc.dir().join("kdc.log")).unwrap();
    let realm = kafka_support::kdc::REALM;
    assert!(
        kdc_log.contains(&format!("sharecheck@{realm} for krbtgt/{realm}@{realm}")),
        "no TGT issued to sharecheck:\n{kdc_log}"
    );
    assert!(
        kdc_log.contains(&format!("sharecheck@{realm} for kafka/127.0.0.1@{realm}")),
        "no service ticket for the broker:\n{kdc_log}"
    );

    // Refusals, each from an empty ticket cache (a cached ticket would still be good).
    let refused = |what: &str, config: &Path, kinit_says: &str| -> (f64, String) {
        let mut c = Command::new(bin());
        c.arg("--config")
            .arg(config)
            .args(["send", file.to_str().unwrap()])
            .env_remove("RUST_LOG")
            .env(
                "KRB5CCNAME",
                format!("FILE:{}", broker.dir.join(format!("cc-{what}")).display()),
            );
        let t0 = Instant::now();
        let (ok, err) = run_limited(c, Duration::from_secs(90));
        let s = t0.elapsed().as_secs_f64();
        assert!(!ok, "{what}: send succeeded");
        assert!(err.contains("refused this client"), "{what}: {err}");
        // kinit's own line says why there is no ticket.
        assert!(err.contains(kinit_says), "{what}: {err}");
        assert!(
            err.lines().count() <= 2,
            "{what}: more than one line:\n{err}"
        );
        assert!(s < 10.0, "{what}: refused only after {s:.1} s");
        (s, err.lines().next().unwrap_or("").to_string())
    };
    // A principal the keytab holds no key for.
    let stranger = env.dir.join("stranger.toml");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &stranger,
        text.replace(&format!("sharecheck@{realm}"), &format!("stranger@{realm}")),
    )
    .unwrap();
    let (stranger_s, stranger_err) = refused("stranger", &stranger, "no suitable keys");
    // The KDC changes sharecheck's key (a new keytab elsewhere): the old keytab is refused.
    kdc.kadmin(&format!(
        "ktadd -k {} sharecheck",
        env.dir.join("new.keytab").display()
    ));
    let (stale_s, stale_err) = refused("stale", &env.config, "kinit:");
    drop(broker);
    report(&format!(
        "kafka kerberos: {n} of {n} shares with a verdict over SASL_SSL (GSSAPI, MIT KDC), \
         first verdicts equal to verify; a principal without a key refused after \
         {stranger_s:.1} s ({stranger_err}), a stale keytab after {stale_s:.1} s ({stale_err})"
    ));
}
