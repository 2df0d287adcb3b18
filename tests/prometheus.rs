//! The dashboard and the alert rules of deploy/ against a real Prometheus (Debian's
//! /usr/bin/prometheus, which scripts/test.sh installs) scraping a real node every second
//! under a real load of shares and jobs: every expression of every panel of
//! deploy/grafana/sharecheck.json returns data, every rule of deploy/prometheus/alerts.yml
//! is loaded and evaluates without error, what each rule looks at has data, and the block
//! shares of the load fire SharecheckBlockFound (and nothing else fires on a healthy node).
//!
//! The node balances through ZooKeeper (a group of its own), so the ZooKeeper panels show
//! a connected leader rather than kafka mode's zeros.

mod kafka_support;
use kafka_support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// What the dashboard's variables become in the queries, as Grafana would substitute them.
const RATE_INTERVAL: &str = "30s";
const RANGE: &str = "5m";

/// Rules whose metric has no series on a healthy node: sharecheck_partition_stalled is set
/// for a partition only once it stalled. For these the metric names are checked against
/// the node's source (src/metrics.rs registers them) instead of against the scraped data.
const ONLY_AFTER_AN_EVENT: &[&str] = &["SharecheckPartitionNotCommitting"];

/// A Prometheus server of the test's own, on a free port with a temporary config and
/// storage; killed and deleted when dropped, also when the test fails.
struct Prometheus {
    proc: Option<Proc>,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, node_port: u16) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: scripts/test.sh installs it (Debian's prometheus \
             package: apt-get install prometheus)"
        );
        let dir = dir.join("prometheus");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - \"{}\"\n\
                 scrape_configs:\n  - job_name: sharecheck\n    static_configs:\n      \
                 - targets: [\"127.0.0.1:{node_port}\"]\n",
                rules.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            proc: Some(Proc { child, log }),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(port, "/-/ready").map(|r| r.0) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 20 s:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn log(&self) -> String {
        self.proc.as_ref().map(|p| p.log_text()).unwrap_or_default()
    }

    /// GET an API path: its `data`; fails the test unless Prometheus answers "success".
    fn api(&self, target: &str) -> Value {
        let (code, body) = get(self.port, target)
            .unwrap_or_else(|| panic!("prometheus does not answer:\n{}", self.log()));
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {target}: HTTP {code}, not JSON ({e}): {body}"));
        assert_eq!(v["status"], "success", "GET {target}: HTTP {code}: {body}");
        v["data"].clone()
    }

    /// An instant query: the result (a vector), or the error Prometheus gives.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let target = format!("/api/v1/query?query={}", encode(expr));
        let (code, body) = get(self.port, &target).ok_or("prometheus does not answer")?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("HTTP {code}: {e}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {code}: {}", v["error"]));
        }
        match v["data"]["result"].as_array() {
            Some(r) if v["data"]["resultType"] == "vector" => Ok(r.clone()),
            _ => Err(format!("not a vector: {}", v["data"])),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Killed (Proc's drop) before its storage goes.
        drop(self.proc.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GET http://127.0.0.1:PORT/TARGET over HTTP/1.0 (Prometheus then closes the connection):
/// the status code and the body, None when nothing answers.
fn get(port: u16, target: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {target} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Percent-encoding of a query parameter (everything but RFC 3986's unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `expr` of the dashboard with its panel's title (rows' nested panels included).
fn dashboard_exprs(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            let title = m.get("title").and_then(Value::as_str).unwrap_or(title);
            if let Some(Value::String(e)) = m.get("expr") {
                out.push((title.to_string(), e.clone()));
            }
            for x in m.values() {
                dashboard_exprs(x, title, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| dashboard_exprs(x, title, out)),
        _ => {}
    }
}

/// A dashboard expression as Grafana sends it: the template variables substituted.
fn substitute(expr: &str, instance: &str) -> String {
    let e = expr
        .replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__range", RANGE)
        .replace("$job", "sharecheck")
        .replace("$instance", instance);
    assert!(
        !e.contains('$'),
        "a variable the test does not know in {expr:?}"
    );
    e
}

/// An alert's expression without its comparisons with a number (`> 1000`, `== 0`): what the
/// condition looks at, which must have data even while the condition is false.
fn without_comparisons(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    'outer: while !rest.is_empty() {
        for op in [" == ", " != ", " >= ", " <= ", " > ", " < "] {
            if let Some(after) = rest.strip_prefix(op) {
                let after = after.strip_prefix("bool ").unwrap_or(after);
                let n = after
                    .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
                    .unwrap_or(after.len());
                if n > 0 && after[..n].parse::<f64>().is_ok() {
                    rest = &after[n..];
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The metric names (sharecheck_*) an expression names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("sharecheck_") {
        let tail = &rest[i..];
        let n = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..n].to_string());
        rest = &tail[n..];
    }
    out
}

/// The alert names of alerts.yml (its `- alert:` lines).
fn alert_names(yaml: &str) -> BTreeSet<String> {
    yaml.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn dashboard_and_alerts_against_a_real_prometheus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/sharecheck.json")).unwrap(),
    )
    .expect("deploy/grafana/sharecheck.json is JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard["panels"], "", &mut exprs);
    assert!(exprs.len() >= 20, "panel expressions: {exprs:?}");
    let alerts_yml = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    let want_rules = alert_names(&alerts_yml);
    assert!(
        want_rules.contains("SharecheckBlockFound"),
        "{want_rules:?}"
    );
    let metrics_rs = std::fs::read_to_string(root.join("src/metrics.rs")).unwrap();

    // A node in a ZooKeeper group of its own, with its metrics listener.
    ensure_zookeeper();
    let node_port = free_port();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let group = format!("t{}-prom-{:x}", std::process::id(), nanos & 0xffff_ffff);
    let env = Env::with_partitions(
        "prom",
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:{node_port}\"\n\
             [balance]\nmode = \"zookeeper\"\nzookeeper = \"{}\"\ngroup = \"{group}\"\n\
             session_timeout_ms = 6000\n",
            zookeeper()
        ),
        4,
    );
    // Jobs and really mined shares, blocks among them (--blocks: 1 share in 500).
    let file = env.gen(
        "load.jsonl",
        &[
            "--mode", "mixed", "--shares", "10000", "--seed", "23", "--blocks", "0.002",
        ],
    );
    let blocks = env
        .verify(&file)
        .iter()
        .filter(|v| v["status"] == "block")
        .count();
    assert!(blocks > 0, "the load has block shares");
    let node = env.spawn(
        &["run", "--node-id", "prom-a", "--capacity", "100000"],
        "node.log",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = http_get(node_port, "/metrics");
        if metric(&t, "sharecheck_partitions_held") == Some(4.0)
            && metric(&t, "sharecheck_zookeeper_leader") == Some(1.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not take its 4 partitions within 30 s:\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let prom = Prometheus::start(&env.dir, node_port);
    // The first scrape, with the block counter still at 0, before any share is sent: the
    // blocks of the load are then an increase Prometheus sees.
    let deadline = Instant::now() + Duration::from_secs(15);
    while prom
        .query("sharecheck_shares_total{status=\"block\"} == 0")
        .map_or(true, |r| r.is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "no scrape of the node within 15 s:\n{}",
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The load: the file's jobs and shares at 1000 shares/s (about 10 s).
    let t0 = Instant::now();
    let mut send = env.spawn(
        &[
            "send",
            "--rate",
            "1000",
            "--batch",
            "100",
            file.to_str().unwrap(),
        ],
        "send.log",
    );
    let instance = format!("127.0.0.1:{node_port}");
    let mut problems = Vec::new();
    let mut rules_checked = 0;
    let mut firing = BTreeSet::new();
    let deadline = t0 + Duration::from_secs(40);
    let mut passes = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        problems.clear();
        // Every panel's every query returns at least one series.
        for (title, e) in &exprs {
            let q = substitute(e, &instance);
            match prom.query(&q) {
                Ok(r) if r.is_empty() => problems.push(format!("panel {title:?}: no series: {q}")),
                Ok(_) => {}
                Err(why) => problems.push(format!("panel {title:?}: {why}: {q}")),
            }
        }
        // Every rule of alerts.yml is loaded and evaluates without error, and what it
        // looks at has data.
        let groups = prom.api("/api/v1/rules");
        let mut names = BTreeSet::new();
        firing.clear();
        rules_checked = 0;
        for g in groups["groups"].as_array().unwrap() {
            for r in g["rules"].as_array().unwrap() {
                let name = r["name"].as_str().unwrap().to_string();
                let q = r["query"].as_str().unwrap();
                rules_checked += 1;
                if r["health"] != "ok" {
                    problems.push(format!(
                        "rule {name}: health {} {}: {q}",
                        r["health"], r["lastError"]
                    ));
                }
                if r["state"] == "firing" {
                    firing.insert(name.clone());
                }
                if ONLY_AFTER_AN_EVENT.contains(&name.as_str()) {
                    for m in metric_names(q) {
                        if !metrics_rs.contains(&format!("\"{m}\"")) {
                            problems.push(format!("rule {name}: {m} is not in src/metrics.rs"));
                        }
                    }
                } else {
                    let base = without_comparisons(q);
                    match prom.query(&base) {
                        Ok(r) if r.is_empty() => {
                            problems.push(format!("rule {name}: no series for {base}"))
                        }
                        Ok(_) => {}
                        Err(why) => problems.push(format!("rule {name}: {why}: {base}")),
                    }
                }
                names.insert(name);
            }
        }
        if names != want_rules {
            problems.push(format!(
                "rules loaded {names:?}, alerts.yml has {want_rules:?}"
            ));
        }
        // The blocks of the load fire SharecheckBlockFound; nothing else fires.
        if firing != BTreeSet::from(["SharecheckBlockFound".to_string()]) {
            problems.push(format!("firing: {firing:?}"));
        }
        if problems.is_empty() {
            // Twice in a row, so that a series that comes and goes is seen to go.
            passes += 1;
            if passes == 2 {
                break;
            }
        } else {
            passes = 0;
        }
    }
    assert!(
        problems.is_empty(),
        "after {:.0} s of load:\n{}\n\nnode log:\n{}",
        t0.elapsed().as_secs_f64(),
        problems.join("\n"),
        node.log_text()
    );
    let settled = t0.elapsed();

    // The node's own view through Prometheus: in its ZooKeeper group, leading it alone, and
    // the block alert names the status.
    for (q, want) in [
        ("sharecheck_zookeeper_connected", "1"),
        ("sharecheck_zookeeper_leader", "1"),
        ("sharecheck_zookeeper_members", "1"),
        ("sharecheck_partitions_held", "4"),
        ("up{job=\"sharecheck\"}", "1"),
    ] {
        let r = prom.query(q).unwrap();
        assert_eq!(r.len(), 1, "{q}: {r:?}");
        assert_eq!(r[0]["value"][1], want, "{q}: {r:?}");
    }
    let alerts = prom.api("/api/v1/alerts");
    let block = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "SharecheckBlockFound")
        .expect("SharecheckBlockFound in /api/v1/alerts");
    assert_eq!(block["labels"]["severity"], "info", "{block}");
    assert_eq!(block["labels"]["status"], "block", "{block}");
    assert_eq!(block["labels"]["instance"], instance.as_str(), "{block}");
    assert!(
        block["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains(&instance)),
        "{block}"
    );
    report(&format!(
        "{} panel expressions ({} panels) and {} alert rules checked against Prometheus \
         {} s after the load began; {} block shares fired SharecheckBlockFound",
        exprs.len(),
        dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] != "row")
            .count(),
        rules_checked,
        settled.as_secs(),
        blocks
    ));

    // The template variables' queries (label_values(SELECTOR, LABEL)) find the node.
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(def) = var["definition"].as_str() else {
            continue;
        };
        let inner = def
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: {def}", var["name"]));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let selector = selector.replace("$job", "sharecheck");
        let values = prom.api(&format!(
            "/api/v1/label/{}/values?match[]={}",
            label.trim(),
            encode(&selector)
        ));
        let want = if label.trim() == "job" {
            "sharecheck"
        } else {
            instance.as_str()
        };
        assert!(
            values
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v.as_str() == Some(want)),
            "variable {}: {def} gave {values}",
            var["name"]
        );
    }

    let st = send.wait_for(Duration::from_secs(60));
    assert!(st.is_some_and(|s| s.success()), "send: {}", send.log_text());
    drop(prom);
    drop(node);
}

#[test]
fn comparisons_are_taken_out_of_alert_expressions() {
    assert_eq!(
        without_comparisons("up{job=\"sharecheck\"} == 0"),
        "up{job=\"sharecheck\"}"
    );
    assert_eq!(
        without_comparisons("sum by (i) (a) > 1000 and sum by (i) (deriv(a[5m])) > 0"),
        "sum by (i) (a) and sum by (i) (deriv(a[5m]))"
    );
    assert_eq!(
        without_comparisons("histogram_quantile(0.99, sum by (le) (rate(b[5m]))) > 1"),
        "histogram_quantile(0.99, sum by (le) (rate(b[5m])))"
    );
    assert_eq!(
        without_comparisons("(time() - t) > 600 and increase(j[10m]) == 0"),
        "(time() - t) and increase(j[10m])"
    );
    assert_eq!(
        metric_names("increase(sharecheck_a_total[5m]) > 0 or sharecheck_b{x=\"y\"}"),
        BTreeSet::from(["sharecheck_a_total".to_string(), "sharecheck_b".to_string()])
    );
}
