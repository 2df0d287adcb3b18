//! Kafka over TLS with SCRAM-SHA-512 authentication, on a broker of the test's own started
//! with `KAFKA_SECURITY=sasl_ssl` (scripts/kafka.sh makes the CA, the certificate and the
//! user, and writes the client settings the test uses as they are). Every client
//! sharecheck makes goes through it: the admin client of `topics create`, `send`, the node's
//! consumers and producers (across a kill -9, with dead letters), `receive`. The password
//! comes from a secret file. A wrong password, an untrusted certificate and a plaintext
//! client are refused.

mod kafka_support;
use kafka_support::*;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_client_goes_through_tls_and_scram_and_others_are_refused() {
    let tls_port = free_port().to_string();
    // scripts/kafka.sh makes the CA, the broker's certificate and a SCRAM user, and writes
    // the client settings that match.
    let broker = OwnBroker::start_with(
        "tls",
        &[
            ("KAFKA_SECURITY", "sasl_ssl"),
            ("KAFKA_SASL_SSL_PORT", &tls_port),
        ],
    );
    let state = broker.dir.join("kafka");
    let extra = std::fs::read_to_string(state.join("client.toml"))
        .expect("scripts/kafka.sh writes client.toml with KAFKA_SECURITY=sasl_ssl");
    let ca = state.join("tls/ca.pem");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join("tls/client.password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the password file is readable by others");
    }
    // `topics create` runs here, through the TLS listener. Small batches and one in flight
    // keep the node busy long enough to be killed mid-run.
    let mut env = Env::with_brokers(
        "tls",
        &format!("127.0.0.1:{tls_port}"),
        &format!(
            "[backend]\ninflight = 1\n[backend.batch]\nmax_shares = 64\nmax_wait_ms = 1\n{extra}"
        ),
    );
    let password = std::fs::read_to_string(state.join("tls/client.password")).unwrap();
    env.client = [
        ("security.protocol", "sasl_ssl"),
        ("ssl.ca.location", ca.to_str().unwrap()),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "sharecheck"),
        ("sasl.password", password.trim()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    // Shares through `send`, and two undecodable messages for the dead-letter topic.
    let n = 3000;
    let file = env.gen("s.jsonl", &["--shares", &n.to_string(), "--seed", "3"]);
    let want = env.verify_statuses(&file);
    env.send(&file, &["--batch", "20"]);
    let garbage: [&[u8]; 2] = [b"not a batch at all", b"SCHX and then nothing"];
    {
        let p: BaseProducer = env.client_config().create().unwrap();
        for g in garbage {
            p.send(BaseRecord::to(&env.topic("shares")).key("g").payload(g))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        p.flush(Duration::from_secs(30)).unwrap();
    }

    // kill -9 once the first verdicts are out, then a second node: every share gets a
    // verdict, the first of each equal to verify's.
    let mut node = env.node("node1.log");
    let reader = env.reader(&env.topic("verdicts"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < 5 && Instant::now() < deadline {
        if let Some(Ok(_)) = reader.poll(Duration::from_millis(50)) {
            seen += 1;
        }
    }
    assert_eq!(seen, 5, "no verdicts over TLS: {}", node.log_text());
    node.signal("KILL");
    node.wait_for(Duration::from_secs(10)).expect("killed");
    let node2 = env.node("node2.log");
    let (first, verdicts) = first_verdicts(&reader, n, Duration::from_secs(120));
    assert_eq!(first.len(), n, "after kill -9: {}", node2.log_text());
    for (id, status) in &first {
        assert_eq!(status, &want[id], "share {id}");
    }
    let dead = env.read_messages(&env.topic("dead-letter"), 2, Duration::from_secs(30));
    for g in garbage {
        assert!(
            dead.iter().any(|(_, payload, _)| payload == g),
            "{:?} is not in the dead-letter topic",
            String::from_utf8_lossy(g)
        );
    }
    // `receive` reads them over TLS too (whole messages, repeats included, until it has at
    // least the count).
    assert!(env.receive(n, 60, &[]).len() >= n);

    // A wrong password (from the environment, which takes the file's place) is refused in
    // one line that says why, within 10 s.
    let mut wrong = env.cmd(&["send", file.to_str().unwrap()]);
    wrong.env("SHARECHECK_KAFKA_SASL_PASSWORD", "wrong");
    let t0 = Instant::now();
    let (ok, err) = run_limited(wrong, Duration::from_secs(90));
    let wrong_s = t0.elapsed().as_secs_f64();
    assert!(!ok, "send with a wrong password succeeded");
    assert!(
        err.contains("refused this client") && err.contains("uthentication"),
        "{err}"
    );
    assert!(err.lines().count() <= 2, "more than the one line:\n{err}");
    assert!(wrong_s < 10.0, "refused only after {wrong_s:.1} s");

    // A broker certificate the client's CA did not sign: the same, for the handshake.
    let other = env.dir.join("other-ca");
    std::fs::create_dir_all(&other).unwrap();
    openssl(
        &other,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=another CA",
            "-days",
            "2",
        ],
    );
    let untrusted = env.dir.join("untrusted.toml");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &untrusted,
        text.replace(ca.to_str().unwrap(), other.join("ca.pem").to_str().unwrap()),
    )
    .unwrap();
    let mut c = Command::new(bin());
    c.arg("--config")
        .arg(&untrusted)
        .args(["receive", "--count", "1", "--timeout", "20"])
        .env_remove("RUST_LOG");
    let t0 = Instant::now();
    let (ok, cert_err) = run_limited(c, Duration::from_secs(90));
    let cert_s = t0.elapsed().as_secs_f64();
    assert!(!ok, "a client trusting another CA was served");
    assert!(
        cert_err.contains("refused this client") && cert_err.contains("certificate"),
        "{cert_err}"
    );
    assert!(cert_s < 10.0, "refused only after {cert_s:.1} s");

    // A client that does not speak TLS to the TLS listener gets nothing.
    let plain = env.dir.join("plain.toml");
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replace(
        "\"security.protocol\" = \"sasl_ssl\"",
        "\"security.protocol\" = \"plaintext\"",
    );
    std::fs::write(&plain, text).unwrap();
    let mut c = Command::new(bin());
    c.arg("--config")
        .arg(&plain)
        .args(["send", file.to_str().unwrap()])
        .env_remove("RUST_LOG");
    let t0 = Instant::now();
    let (ok, plain_err) = run_limited(c, Duration::from_secs(90));
    let plain_s = t0.elapsed().as_secs_f64();
    assert!(!ok, "a plaintext client was served by the TLS listener");
    drop(broker);
    let last = |t: &str| t.lines().last().unwrap_or("").to_string();
    report(&format!(
        "kafka tls: {n} of {n} shares with a verdict over SASL_SSL (SCRAM-SHA-512) across a \
         kill -9 ({verdicts} verdicts), first verdicts equal to verify, {} dead letters; a \
         wrong password refused after {wrong_s:.1} s ({}), an untrusted certificate after {cert_s:.1} s \
         ({}), plaintext after {plain_s:.1} s ({})",
        dead.len(),
        last(&err),
        last(&cert_err),
        last(&plain_err)
    ));
}
