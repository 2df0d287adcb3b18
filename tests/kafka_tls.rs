//! Kafka over TLS with SCRAM-SHA-512 authentication, on a broker of the test's own with a
//! SASL_SSL listener whose certificate comes from a CA made here (openssl). Every client
//! sharecheck makes goes through it: the admin client of `topics create`, `send`, the node's
//! consumers and producers, `receive`. The password comes from a secret file. A wrong
//! password and a plaintext client are refused.

mod kafka_support;
use kafka_support::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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

/// A CA, and the broker's certificate for 127.0.0.1 signed by it in a PKCS12 keystore:
/// (the CA's PEM, the keystore).
fn certificates(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let days = ["-days", "2"];
    openssl(
        dir,
        &[
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            ][..],
            &["-out", "ca.pem", "-subj", "/CN=sharecheck test CA"],
            &days,
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "broker.key",
            "-out",
            "broker.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            &[
                "x509",
                "-req",
                "-in",
                "broker.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
            ][..],
            &[
                "-CAcreateserial",
                "-out",
                "broker.pem",
                "-extfile",
                "san.cnf",
            ],
            &days,
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-in",
            "broker.pem",
            "-inkey",
            "broker.key",
            "-certfile",
            "ca.pem",
            "-out",
            "broker.p12",
            "-passout",
            "pass:changeit",
        ],
    );
    (dir.join("ca.pem"), dir.join("broker.p12"))
}

/// `sharecheck ARGS` under a time limit: (success, stderr).
fn run_limited(mut c: Command, limit: Duration) -> (bool, String) {
    let log = std::env::temp_dir().join(format!("sharecheck-tls-{}.err", std::process::id()));
    c.stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = c.spawn().unwrap();
    let t0 = Instant::now();
    let ok = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.success();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    (ok, text)
}

#[test]
fn every_client_goes_through_tls_and_scram_and_others_are_refused() {
    let dir = std::env::temp_dir().join(format!("sharecheck-tls-certs-{}", std::process::id()));
    let (ca, keystore) = certificates(&dir);
    let tls_port = free_port().to_string();
    let broker = OwnBroker::start_with(
        "tls",
        &[
            ("KAFKA_SASL_SSL_PORT", &tls_port),
            ("KAFKA_SSL_KEYSTORE", keystore.to_str().unwrap()),
            ("KAFKA_SSL_PASSWORD", "changeit"),
            ("KAFKA_SCRAM_USERS", "validator:v-secret"),
        ],
    );
    let password = dir.join("kafka.password");
    std::fs::write(&password, "v-secret\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let extra = format!(
        "[kafka.client]\n\"security.protocol\" = \"sasl_ssl\"\n\"ssl.ca.location\" = \"{}\"\n\
         \"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"validator\"\n\
         [kafka.secret_files]\n\"sasl.password\" = \"{}\"\n",
        ca.display(),
        password.display()
    );
    // `topics create` runs here, through the TLS listener.
    let env = Env::with_brokers("tls", &format!("127.0.0.1:{tls_port}"), &extra);
    let _node = env.node("node.log");

    let n = 400;
    let file = env.gen("s.jsonl", &["--shares", &n.to_string(), "--seed", "3"]);
    let want: HashMap<u64, String> = env
        .verify(&file)
        .iter()
        .map(|v| (v["id"].as_u64().unwrap(), v["status"].to_string()))
        .collect();
    env.send(&file, &[]);
    let got = env.receive(n, 90, &[]);
    let (by_id, _) = by_id(&got);
    assert_eq!(by_id.len(), n);
    for (id, v) in &by_id {
        assert_eq!(v["status"].to_string(), want[id], "share {id}");
    }

    // A wrong password (from the environment, which takes the file's place) is refused in
    // one line that says why, within seconds.
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
    assert!(wrong_s < 15.0, "refused only after {wrong_s:.1} s");

    // A broker certificate the client's CA did not sign: the same, for the handshake.
    let other = dir.join("other");
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
    assert!(cert_s < 15.0, "refused only after {cert_s:.1} s");

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
    let _ = std::fs::remove_dir_all(&dir);
    let last = |t: &str| t.lines().last().unwrap_or("").to_string();
    report(&format!(
        "kafka tls: {n} of {n} verdicts over SASL_SSL (SCRAM-SHA-512) equal to verify; a \
         wrong password refused after {wrong_s:.1} s ({}), an untrusted certificate after {cert_s:.1} s \
         ({}), plaintext after {plain_s:.1} s ({})",
        last(&err),
        last(&cert_err),
        last(&plain_err)
    ));
}
