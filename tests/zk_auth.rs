//! ZooKeeper with credentials, against a real ZooKeeper (scripts/zookeeper.sh) and a real
//! Kafka broker: the nodes of a group authenticate with the digest scheme and their znodes
//! are theirs alone. A client without the group's credentials, or with a wrong password,
//! can neither read nor change them (no ghost member, no squatted election, no rewritten
//! owner), and a node with wrong credentials takes no partition.

mod kafka_support;
use kafka_support::*;
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

fn status(env: &Env, envs: &[(&str, &str)]) -> Result<Value, String> {
    cluster_status(&env.config, envs)
}

/// `sharecheck run` as node `id` with `capacity`, its stderr in `<id>.log`, with `envs`
/// (e.g. SHARECHECK_ZOOKEEPER_AUTH; without it only the config's credentials). A [`Proc`]
/// kills the node when dropped, also when an assertion fails.
fn node(env: &Env, id: &str, capacity: &str, envs: &[(&str, &str)]) -> Proc {
    let mut c = env.cmd(&["run", "--node-id", id, "--capacity", capacity]);
    c.env_remove("SHARECHECK_ZOOKEEPER_AUTH");
    for (k, v) in envs {
        c.env(k, v);
    }
    let log = env.dir.join(format!("{id}.log"));
    c.stderr(std::fs::File::create(&log).unwrap());
    Proc {
        child: c.spawn().unwrap(),
        log,
    }
}

/// A node `b` with the wrong credentials of `envs` says `why` within 30 s and takes nothing:
/// node a keeps its `owned` partitions and is the group's one member.
fn wrong_credentials_take_nothing(env: &Env, envs: &[(&str, &str)], why: &str, owned: usize) {
    let b = node(env, "b", "1000000", envs);
    let b_text = || std::fs::read_to_string(&b.log).unwrap_or_default();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) && !b_text().contains(why) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(b_text().contains(why), "{}", b_text());
    let s = status(env, &[]).unwrap();
    assert_eq!(owned_by(&s, "a"), owned, "{s}");
    assert_eq!(s["members"].as_array().unwrap().len(), 1, "{s}");
}

async fn client(auth: Option<&str>) -> Client {
    let mut c = Client::connector().with_session_timeout(Duration::from_secs(6));
    if let Some(a) = auth {
        c = c.with_auth("digest", a.as_bytes());
    }
    c.connect(zookeeper()).await.expect("connect to ZooKeeper")
}

/// Everything an intruder would try on the group's znodes: each must be refused.
async fn refused_everything(c: &Client, root: &str, who: &str) {
    let open = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let seq = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    let ghost = br#"{"host":"x","node_id":"ghost","backends":["cpu"],"capacity":1e12}"#;
    let tries: Vec<(&str, Result<(), ZkError>)> = vec![
        (
            "read a member",
            c.get_data(&format!("{root}/members/a")).await.map(|_| ()),
        ),
        (
            "list the members",
            c.list_children(&format!("{root}/members"))
                .await
                .map(|_| ()),
        ),
        (
            "register a ghost member",
            c.create(&format!("{root}/members/ghost"), ghost, &open)
                .await
                .map(|_| ()),
        ),
        (
            "join the election",
            c.create(&format!("{root}/election/n_"), b"ghost", &seq)
                .await
                .map(|_| ()),
        ),
        (
            "rewrite the assignment",
            c.set_data(&format!("{root}/assignment"), b"{}", None)
                .await
                .map(|_| ()),
        ),
        (
            "delete an owner",
            c.delete(&format!("{root}/owners/0"), None).await,
        ),
        (
            "take a partition",
            c.create(&format!("{root}/owners/99"), b"ghost", &open)
                .await
                .map(|_| ()),
        ),
    ];
    for (what, r) in tries {
        assert!(
            matches!(r, Err(ZkError::NoAuth)),
            "{who} could {what}: {r:?}"
        );
    }
}

#[test]
fn a_group_with_credentials_is_closed_to_everyone_else() {
    ensure_zookeeper();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let group = format!("t{}-auth-{:x}", std::process::id(), nanos & 0xffff_ffff);
    let secret = std::env::temp_dir().join(format!("sharecheck-{group}.secret"));
    std::fs::write(&secret, "pool:s3cret\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let extra = format!(
        "[balance]\nmode = \"zookeeper\"\nzookeeper = \"{}\"\ngroup = \"{group}\"\n\
         session_timeout_ms = 6000\nzookeeper_auth_file = \"{}\"\n",
        zookeeper(),
        secret.display()
    );
    let env = Env::with_partitions("auth", &extra, 4);
    let node_a = node(&env, "a", "1000", &[]);

    // The node joins with its credentials and owns every partition.
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < Duration::from_secs(60) {
        match status(&env, &[]) {
            Ok(s) if owned_by(&s, "a") == 4 => break,
            Ok(s) => last = s.to_string(),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = || std::fs::read_to_string(&node_a.log).unwrap_or_default();
    let s = status(&env, &[]).unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_eq!(owned_by(&s, "a"), 4, "{last}\n{}", log());

    // The node shares verdicts as always.
    let file = env.gen("s.jsonl", &["--shares", "300", "--seed", "5"]);
    env.send(&file, &[]);
    let got = env.receive(300, 60, &[]);
    assert_eq!(got.len(), 300);

    let root = format!("/sharecheck/{group}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        refused_everything(&client(None).await, &root, "a client without credentials").await;
        refused_everything(
            &client(Some("pool:wrong")).await,
            &root,
            "a client with a wrong password",
        )
        .await;
        // The right identity reads it (what `cluster status` does).
        let c = client(Some("pool:s3cret")).await;
        assert!(c.get_data(&format!("{root}/members/a")).await.is_ok());
    });

    // `cluster status` without the credentials says why it cannot read the group.
    let e = status(&env, &[("SHARECHECK_ZOOKEEPER_AUTH", "pool:wrong")]).unwrap_err();
    assert!(e.contains("credentials"), "{e}");

    // A node with a wrong password takes nothing, and says why.
    wrong_credentials_take_nothing(
        &env,
        &[("SHARECHECK_ZOOKEEPER_AUTH", "pool:wrong")],
        "not allowed",
        4,
    );
    assert!(
        !log().contains("without authentication"),
        "a node with credentials warned it had none:\n{}",
        log()
    );
    let _ = std::fs::remove_file(&secret);
    report(
        "zookeeper auth: 7 of 7 intrusions refused without credentials and with a wrong \
         password; a node with wrong credentials took 0 of 4 partitions",
    );
}

/// A ZooKeeper server of the test's own, started by scripts/zookeeper.sh with `ZK_AUTH` and
/// more environment for the script; stopped and deleted when dropped.
struct OwnZookeeper {
    port: u16,
    dir: std::path::PathBuf,
}

impl OwnZookeeper {
    fn start(auth: &str, envs: &[(&str, &str)]) -> OwnZookeeper {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sharecheck-zk-{}-{port}", std::process::id()));
        let z = OwnZookeeper { port, dir };
        let mut up = z.script("up");
        up.env("ZK_AUTH", auth).envs(envs.iter().copied());
        let out = up.output().unwrap();
        assert!(
            out.status.success(),
            "scripts/zookeeper.sh up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        z
    }

    fn script(&self, arg: &str) -> std::process::Command {
        let mut c = std::process::Command::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/zookeeper.sh"),
        );
        c.arg(arg)
            .env("SHARECHECK_SERVICES_DIR", &self.dir)
            .env("ZK_PORT", self.port.to_string());
        c
    }
}

impl Drop for OwnZookeeper {
    fn drop(&mut self) {
        let _ = self.script("down").arg("--purge").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node of a server started with `ZK_AUTH=scheme` (and `script_env`) joins with the
/// settings the script wrote, and takes every partition; an anonymous client gets nothing, not even the root.
/// Returns the server, the test's environment, the node, how long it took and the group's
/// znode.
fn enforced_group(
    scheme: &str,
    script_env: &[(&str, &str)],
) -> (OwnZookeeper, Env, Proc, Duration, String) {
    let zk = OwnZookeeper::start(scheme, script_env);
    let fragment = std::fs::read_to_string(zk.dir.join("zookeeper/client.toml"))
        .expect("scripts/zookeeper.sh writes client.toml with ZK_AUTH");
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let group = format!("t{}-enforced-{:x}", std::process::id(), nanos & 0xffff_ffff);
    let extra = format!(
        "[balance]\nmode = \"zookeeper\"\nzookeeper = \"127.0.0.1:{}\"\ngroup = \"{group}\"\n\
         session_timeout_ms = 6000\n{fragment}",
        zk.port
    );
    let env = Env::with_partitions(&format!("enforced-{scheme}"), &extra, 2);
    let node = node(&env, "a", "1000", &[]);
    let t0 = Instant::now();
    let mut owned = 0;
    while t0.elapsed() < Duration::from_secs(60) && owned < 2 {
        if let Ok(s) = status(&env, &[]) {
            owned = owned_by(&s, "a");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let took = t0.elapsed();
    assert_eq!(
        owned,
        2,
        "{}",
        std::fs::read_to_string(&node.log).unwrap_or_default()
    );
    (zk, env, node, took, format!("/sharecheck/{group}"))
}

/// What an anonymous client gets from the server at `addr`: an error, from connecting or
/// from listing the root.
fn anonymous_listing(addr: &str) -> Result<(), ZkError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = Client::connector()
            .with_session_timeout(Duration::from_secs(6))
            .connect(addr)
            .await?;
        c.list_children("/").await.map(|_| ())
    })
}

#[test]
fn a_zookeeper_that_requires_authentication_serves_nodes_with_its_credentials() {
    ensure_zookeeper();
    let (zk, _env, _node, took, _) = enforced_group("digest", &[]);
    let anonymous = anonymous_listing(&format!("127.0.0.1:{}", zk.port));
    assert!(anonymous.is_err(), "an anonymous client listed the root");
    report(&format!(
        "zookeeper ZK_AUTH=digest: the node owned 2 of 2 partitions in {:.1} s with the \
         server's credentials; an anonymous client refused ({:?})",
        took.as_secs_f64(),
        anonymous.err()
    ));
}

/// Checks that each of the group's znodes (the group, members, election, owners,
/// assignment, member a) has exactly one ACL: all rights to `sasl:<id>`. Returns how many.
async fn group_owned_by(c: &Client, group_root: &str, id: &str) -> usize {
    let mut seen = 0;
    for dir in [
        "",
        "/members",
        "/election",
        "/owners",
        "/assignment",
        "/members/a",
    ] {
        let path = format!("{group_root}{dir}");
        let (acl, _) = c
            .get_acl(&path)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let got: Vec<String> = acl
            .iter()
            .map(|a| format!("{}:{}:{:?}", a.scheme(), a.id(), a.permission()))
            .collect();
        assert_eq!(acl.len(), 1, "{path}: {got:?}");
        assert_eq!(
            (acl[0].scheme(), acl[0].id(), acl[0].permission()),
            ("sasl", id, zookeeper_client::Permission::ALL),
            "{path}"
        );
        seen += 1;
    }
    seen
}

/// SASL (DIGEST-MD5 against the server's JAAS user): the node joins and validates, its
/// znodes belong to `sasl:sharecheck` alone, an anonymous client and a wrong password are
/// refused, and `cluster status` works with the credentials and says why without them.
#[test]
fn a_group_authenticated_by_sasl_is_closed_to_everyone_else() {
    ensure_zookeeper();
    let (zk, env, node, took, group_root) = enforced_group("sasl", &[]);
    let file = env.gen("s.jsonl", &["--shares", "200", "--seed", "9"]);
    env.send(&file, &[]);
    assert_eq!(env.receive(200, 60, &[]).len(), 200);

    let addr = format!("127.0.0.1:{}", zk.port);
    let secret = std::fs::read_to_string(zk.dir.join("zookeeper/zookeeper.secret")).unwrap();
    let (user, pass) = secret.trim_end().split_once(':').unwrap();
    assert_eq!(user, "sharecheck");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (acls_seen, wrong) = rt.block_on(async {
        let sasl = |p: &str| {
            Client::connector()
                .with_session_timeout(Duration::from_secs(6))
                .with_sasl(zookeeper_client::SaslOptions::digest_md5(
                    user.to_string(),
                    p.to_string(),
                ))
        };
        let c = sasl(pass).connect(&addr).await.expect("SASL session");
        // Every znode of the group: all rights to sasl:sharecheck, nothing to anyone else.
        let seen = group_owned_by(&c, &group_root, "sharecheck").await;
        let wrong = sasl("wrong").connect(&addr).await.map(|_| ());
        (seen, wrong)
    });
    assert_eq!(wrong, Err(ZkError::AuthFailed), "a wrong SASL password");
    let anonymous = anonymous_listing(&addr);
    assert!(anonymous.is_err(), "an anonymous client listed the root");

    // `cluster status` with a wrong password says the server refused the credentials.
    let e = status(&env, &[("SHARECHECK_ZOOKEEPER_AUTH", "sharecheck:wrong")]).unwrap_err();
    assert!(e.contains("refused this client's credentials"), "{e}");
    assert!(e.lines().count() <= 3, "{e}");
    // A node with a wrong password takes nothing, and says why.
    wrong_credentials_take_nothing(
        &env,
        &[("SHARECHECK_ZOOKEEPER_AUTH", "sharecheck:wrong")],
        "refused this client",
        2,
    );
    let log = std::fs::read_to_string(&node.log).unwrap_or_default();
    assert!(
        !log.contains("without authentication") && !log.contains("in clear"),
        "{log}"
    );
    report(&format!(
        "zookeeper ZK_AUTH=sasl: the node owned 2 of 2 partitions in {:.1} s and answered \
         200 of 200 shares; {acls_seen} of {acls_seen} group znodes sasl:sharecheck only; \
         anonymous refused ({:?}), wrong password AuthFailed",
        took.as_secs_f64(),
        anonymous.err()
    ));
}

/// SASL over TLS (`ZK_TLS=1 ZK_AUTH=sasl`): the node joins with both settings of the
/// script's client.toml and validates; a wrong password is refused over TLS too, in one line.
#[test]
fn sasl_over_tls_serves_the_node_and_refuses_a_wrong_password() {
    ensure_zookeeper();
    let (zk, env, node, took, _) = enforced_group("sasl", &[("ZK_TLS", "1")]);
    let fragment = std::fs::read_to_string(zk.dir.join("zookeeper/client.toml")).unwrap();
    assert!(
        fragment.contains("zookeeper_tls = true")
            && fragment.contains("zookeeper_auth_scheme = \"sasl\""),
        "{fragment}"
    );
    let file = env.gen("s.jsonl", &["--shares", "100", "--seed", "13"]);
    env.send(&file, &[]);
    assert_eq!(env.receive(100, 60, &[]).len(), 100);
    let e = status(&env, &[("SHARECHECK_ZOOKEEPER_AUTH", "sharecheck:wrong")]).unwrap_err();
    assert!(
        e.contains("over TLS") && e.contains("refused this client's credentials"),
        "{e}"
    );
    assert!(e.lines().count() <= 3, "{e}");
    let log = std::fs::read_to_string(&node.log).unwrap_or_default();
    assert!(!log.contains("in clear"), "{log}");
    report(&format!(
        "zookeeper ZK_TLS=1 ZK_AUTH=sasl: the node owned 2 of 2 partitions in {:.1} s and \
         answered 100 of 100 shares over TLS; a wrong password refused ({})",
        took.as_secs_f64(),
        e.lines().last().unwrap_or("")
    ));
}

/// Kerberos (SASL GSSAPI, against a KDC of the test's own): the node joins with the ticket
/// its Kerberos library gets from the client keytab (KRB5_CLIENT_KTNAME), and validates; the
/// group's znodes belong to `sasl:sharecheck@REALM` alone; an anonymous client is refused;
/// once the KDC has changed the key, a node and `cluster status` with the old keytab and no
/// ticket are refused and say why, and the node takes nothing.
#[cfg(feature = "gssapi")]
#[test]
fn a_group_authenticated_by_kerberos_is_closed_to_everyone_else() {
    use kafka_support::kdc::{Kdc, REALM};
    ensure_zookeeper();
    let kdc = Kdc::start();
    let realm_dir = kdc.dir();
    // This process (its own ZooKeeper client below) and the nodes it starts find the realm
    // and the keytab here, and keep their tickets in a cache of their own.
    std::env::set_var("KRB5_CONFIG", realm_dir.join("krb5.conf"));
    std::env::set_var("KRB5_CLIENT_KTNAME", realm_dir.join("sharecheck.keytab"));
    std::env::set_var(
        "KRB5CCNAME",
        format!("FILE:{}", realm_dir.join("krb5cc").display()),
    );
    let (zk, env, node, took, group_root) =
        enforced_group("kerberos", &[("ZK_KDC_DIR", realm_dir.to_str().unwrap())]);
    let file = env.gen("s.jsonl", &["--shares", "200", "--seed", "11"]);
    env.send(&file, &[]);
    assert_eq!(env.receive(200, 60, &[]).len(), 200);

    let addr = format!("127.0.0.1:{}", zk.port);
    let principal = format!("sharecheck@{REALM}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let acls_seen = rt.block_on(async {
        let c = Client::connector()
            .with_session_timeout(Duration::from_secs(6))
            .with_sasl(zookeeper_client::SaslOptions::gssapi())
            .connect(&addr)
            .await
            .expect("a Kerberos session");
        group_owned_by(&c, &group_root, &principal).await
    });
    let anonymous = anonymous_listing(&addr);
    assert!(anonymous.is_err(), "an anonymous client listed the root");

    // The KDC changes sharecheck's key (the new one goes elsewhere): the keytab of the
    // nodes no longer gets a ticket, and a client with no ticket cached is refused.
    kdc.kadmin(&format!(
        "ktadd -k {} sharecheck",
        env.dir.join("new.keytab").display()
    ));
    let fresh = format!("FILE:{}", env.dir.join("krb5cc-fresh").display());
    let e = status(&env, &[("KRB5CCNAME", &fresh)]).unwrap_err();
    assert!(e.contains("could not start its SASL login"), "{e}");
    assert!(e.lines().count() <= 3, "{e}");
    wrong_credentials_take_nothing(&env, &[("KRB5CCNAME", &fresh)], "SASL login", 2);
    let log = std::fs::read_to_string(&node.log).unwrap_or_default();
    assert!(
        !log.contains("without authentication") && !log.contains("in clear"),
        "{log}"
    );
    report(&format!(
        "zookeeper ZK_AUTH=kerberos: the node owned 2 of 2 partitions in {:.1} s and \
         answered 200 of 200 shares; {acls_seen} of {acls_seen} group znodes \
         sasl:{principal} only; anonymous refused ({:?}); a stale keytab refused ({})",
        took.as_secs_f64(),
        anonymous.err(),
        e.lines().last().unwrap_or("")
    ));
}
