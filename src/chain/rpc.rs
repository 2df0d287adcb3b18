//! A blocking JSON-RPC client for the Bitcoin node (Bitcoin Core or btcd), with failover over
//! the configured URLs.
//!
//! One request is one HTTP POST of a JSON-RPC 1.0 object with basic auth. Anything that is not
//! a JSON-RPC answer (connection refused, timeout, HTTP 401, a 503 page from an overloaded
//! Core) means the endpoint did not answer, and [`Rpc::call`] moves on to the next URL; a
//! JSON-RPC error is an answer and is returned as it is. Core answers errors with HTTP 500 or
//! 404 and btcd with 200, so the status code alone decides nothing.
//!
//! Plain HTTP only: the `ureq` crate is built without TLS (the config check refuses https).
//! The machine's proxy variables are ignored; the node is always reached directly.

use crate::config::BitcoindConfig;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Most bytes one answer may have. A template of a full block carries up to 4 MB of
/// transactions twice over as hex (data, and txid/hash per transaction): over ureq's default
/// limit of 10 MB.
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// A Bitcoin node's RPC at one or more URLs.
pub struct Rpc {
    urls: Vec<String>,
    auth: Auth,
    agent: ureq::Agent,
    timeout: Duration,
    longpoll_timeout: Duration,
    next_id: AtomicU64,
}

/// How requests authenticate.
enum Auth {
    /// The `Authorization` header, from user and password (or password_file, read at start).
    Header(String),
    /// Core's cookie file, read for every request: Core writes a new one at each start.
    Cookie(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No endpoint answered (connection refused, timeout, HTTP 401/5xx without a JSON-RPC
    /// body): with the last error per URL.
    #[error("no Bitcoin node answered: {0}")]
    Unreachable(String),
    /// A node answered with a JSON-RPC error.
    #[error("{url} answered with error {code}: {message}")]
    Node {
        url: String,
        code: i64,
        message: String,
    },
    /// The answer was not what the method returns.
    #[error("unexpected answer: {0}")]
    Invalid(String),
}

/// Why one endpoint gave no answer.
struct NoAnswer {
    /// The request ran into its timeout (a long poll that found no change does).
    timed_out: bool,
    reason: String,
}

/// `getblocktemplate`'s result, the fields a job maker uses (BIP 22/23, BIP 141/145).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BlockTemplate {
    pub version: u32,
    pub previousblockhash: String,
    pub transactions: Vec<TemplateTx>,
    /// Subsidy plus the fees of `transactions`, in satoshis.
    pub coinbasevalue: u64,
    #[serde(default)]
    pub coinbaseaux: Option<CoinbaseAux>,
    pub bits: String,
    pub height: u64,
    pub curtime: u64,
    #[serde(default)]
    pub mintime: Option<u64>,
    /// The coinbase output committing to the witnesses, as the whole output script in hex
    /// (`6a24aa21a9ed` and the 32-byte commitment), as Core sends it. btcd sends only the
    /// 32-byte commitment; [`Rpc::block_template`] completes it to the script. Absent when
    /// the node sends none (btcd without witness transactions in the template).
    #[serde(default)]
    pub default_witness_commitment: Option<String>,
    #[serde(default)]
    pub longpollid: Option<String>,
    pub target: String,
}

/// One transaction of a template.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TemplateTx {
    /// The serialized transaction, with witnesses, in hex.
    pub data: String,
    pub txid: String,
    /// wtxid
    pub hash: String,
    #[serde(default)]
    pub fee: Option<i64>,
}

/// Data the node asks to see in the coinbase's scriptSig.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CoinbaseAux {
    #[serde(default)]
    pub flags: String,
}

/// The start of a witness commitment output script: OP_RETURN, a 36-byte push, and BIP 141's
/// header `aa21a9ed`.
const WITNESS_COMMITMENT_PREFIX: &str = "6a24aa21a9ed";

impl Rpc {
    /// The endpoints of `cfg` (url, then fallback_urls), its credentials (a password_file is
    /// read now) and timeouts. Connects to nothing yet.
    pub fn new(cfg: &BitcoindConfig) -> anyhow::Result<Rpc> {
        cfg.check()?;
        let auth = if let Some(cookie) = &cfg.cookie_file {
            Auth::Cookie(cookie.clone())
        } else if cfg.user.is_empty() {
            anyhow::bail!(
                "bitcoind: no RPC credentials; set bitcoind.user and password (or \
                 password_file), or bitcoind.cookie_file"
            );
        } else if let Some(file) = &cfg.password_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("bitcoind.password_file {}: {e}", file.display()))?;
            let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
            anyhow::ensure!(
                !password.is_empty(),
                "bitcoind.password_file {} is empty",
                file.display()
            );
            Auth::Header(basic_auth(&format!("{}:{password}", cfg.user)))
        } else {
            Auth::Header(basic_auth(&format!("{}:{}", cfg.user, cfg.password)))
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .build()
            .new_agent();
        Ok(Rpc {
            urls: cfg.urls().map(str::to_string).collect(),
            auth,
            agent,
            timeout: Duration::from_millis(cfg.timeout_ms),
            longpoll_timeout: Duration::from_millis(cfg.longpoll_timeout_ms),
            next_id: AtomicU64::new(1),
        })
    }

    /// The first endpoint that answers (transport failures move on to the next, in order; a
    /// JSON-RPC error is an answer).
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        self.first_answer(method, &params, self.timeout)
            .map(|(_, v)| v)
    }

    /// The same on one endpoint by index (block submission tries each in turn).
    pub fn call_at(&self, endpoint: usize, method: &str, params: Value) -> Result<Value, RpcError> {
        self.exchange(endpoint, method, &params, self.timeout)
            .unwrap_or_else(|n| Err(self.unreachable(&[(endpoint, n)])))
    }

    /// How many URLs there are (url and fallback_urls).
    pub fn endpoints(&self) -> usize {
        self.urls.len()
    }

    /// The URL of an endpoint; panics past [`Rpc::endpoints`], as `call_at` does.
    pub fn url(&self, endpoint: usize) -> &str {
        &self.urls[endpoint]
    }

    /// getblocktemplate with the segwit rule; with Some(id), a long poll (returns when the
    /// template changes, or at the long-poll timeout).
    ///
    /// A long poll that reaches `longpoll_timeout_ms` is not a failure: the current template
    /// is then fetched without waiting (from the first endpoint that answers), so the caller
    /// gets a template either way and can poll again with its `longpollid`.
    pub fn block_template(&self, longpollid: Option<&str>) -> Result<BlockTemplate, RpcError> {
        let plain = json!([{"rules": ["segwit"]}]);
        let (endpoint, answer) = match longpollid {
            None => self.first_answer("getblocktemplate", &plain, self.timeout)?,
            Some(id) => {
                let params = json!([{"rules": ["segwit"], "longpollid": id}]);
                match self.first_answer_or_timeout(&params)? {
                    Some(got) => got,
                    None => self.first_answer("getblocktemplate", &plain, self.timeout)?,
                }
            }
        };
        let mut t: BlockTemplate = serde_json::from_value(answer).map_err(|e| {
            RpcError::Invalid(format!("getblocktemplate from {}: {e}", self.url(endpoint)))
        })?;
        if let Some(c) = &mut t.default_witness_commitment {
            if c.len() == 64 {
                c.insert_str(0, WITNESS_COMMITMENT_PREFIX);
            }
        }
        Ok(t)
    }

    /// submitblock on one endpoint: Ok(None) accepted, Ok(Some(reason)) the node's rejection
    /// (a result string such as "duplicate", or a JSON-RPC error's message), Err only when
    /// that endpoint did not answer.
    pub fn submit_block_at(
        &self,
        endpoint: usize,
        block_hex: &str,
    ) -> Result<Option<String>, RpcError> {
        match self.call_at(endpoint, "submitblock", json!([block_hex])) {
            Ok(Value::Null) => Ok(None),
            Ok(Value::String(reason)) => Ok(Some(reason)),
            Ok(other) => Ok(Some(other.to_string())),
            Err(RpcError::Node { code, message, .. }) => Ok(Some(format!("{message} ({code})"))),
            Err(e) => Err(e),
        }
    }

    pub fn best_block_hash(&self) -> Result<String, RpcError> {
        let v = self.call("getbestblockhash", json!([]))?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| RpcError::Invalid(format!("getbestblockhash: {v}")))
    }

    pub fn block_count(&self) -> Result<u64, RpcError> {
        let v = self.call("getblockcount", json!([]))?;
        v.as_u64()
            .ok_or_else(|| RpcError::Invalid(format!("getblockcount: {v}")))
    }

    /// The first answer in endpoint order, with the index of the endpoint that gave it.
    fn first_answer(
        &self,
        method: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<(usize, Value), RpcError> {
        let mut failed = Vec::new();
        for i in 0..self.urls.len() {
            match self.exchange(i, method, params, timeout) {
                Ok(answer) => return answer.map(|v| (i, v)),
                Err(n) => failed.push((i, n)),
            }
        }
        Err(self.unreachable(&failed))
    }

    /// A long poll in endpoint order: None when an endpoint let it run to the long-poll
    /// timeout (it is alive, the template just did not change).
    fn first_answer_or_timeout(&self, params: &Value) -> Result<Option<(usize, Value)>, RpcError> {
        let mut failed = Vec::new();
        for i in 0..self.urls.len() {
            match self.exchange(i, "getblocktemplate", params, self.longpoll_timeout) {
                Ok(answer) => return answer.map(|v| Some((i, v))),
                Err(n) if n.timed_out => return Ok(None),
                Err(n) => failed.push((i, n)),
            }
        }
        Err(self.unreachable(&failed))
    }

    fn unreachable(&self, failed: &[(usize, NoAnswer)]) -> RpcError {
        let each: Vec<String> = failed
            .iter()
            .map(|(i, n)| format!("{}: {}", self.url(*i), n.reason))
            .collect();
        RpcError::Unreachable(each.join("; "))
    }

    /// One request to one endpoint: Err when it gave no JSON-RPC answer; Ok(Err) when it
    /// answered with a JSON-RPC error.
    fn exchange(
        &self,
        endpoint: usize,
        method: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<Result<Value, RpcError>, NoAnswer> {
        let url = self.url(endpoint);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params});
        let authorization = self.authorization()?;
        let sent = self
            .agent
            .post(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Authorization", &authorization)
            .header("Content-Type", "application/json")
            .send(body.to_string());
        let mut response = sent.map_err(|e| NoAnswer {
            timed_out: matches!(e, ureq::Error::Timeout(_)),
            reason: e.to_string(),
        })?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| NoAnswer {
                timed_out: matches!(e, ureq::Error::Timeout(_)),
                reason: format!("HTTP {status}, reading the answer: {e}"),
            })?;
        match parse_answer(&text) {
            Some(Ok(v)) => Ok(Ok(v)),
            Some(Err((code, message))) => Ok(Err(RpcError::Node {
                url: url.to_string(),
                code,
                message,
            })),
            None if status == 401 => Err(NoAnswer {
                timed_out: false,
                reason: "HTTP 401 Unauthorized: the node refused the credentials (check \
                         bitcoind.user and password, password_file or cookie_file)"
                    .into(),
            }),
            None => Err(NoAnswer {
                timed_out: false,
                reason: format!(
                    "HTTP {status} without a JSON-RPC answer: {:.200}",
                    text.trim()
                ),
            }),
        }
    }

    /// The `Authorization` header for the next request.
    fn authorization(&self) -> Result<String, NoAnswer> {
        match &self.auth {
            Auth::Header(h) => Ok(h.clone()),
            Auth::Cookie(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| NoAnswer {
                    timed_out: false,
                    reason: format!("cannot read cookie file {}: {e}", path.display()),
                })?;
                let cookie = text.trim();
                if !cookie.contains(':') {
                    return Err(NoAnswer {
                        timed_out: false,
                        reason: format!("cookie file {} is not user:password", path.display()),
                    });
                }
                Ok(basic_auth(cookie))
            }
        }
    }
}

fn basic_auth(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

/// A JSON-RPC answer: its result, or its error's code and message. None when `text` is no
/// JSON-RPC answer (an HTML error page, an empty 401).
fn parse_answer(text: &str) -> Option<Result<Value, (i64, String)>> {
    let mut v: Value = serde_json::from_str(text).ok()?;
    let obj = v.as_object_mut()?;
    if !obj.contains_key("result") && !obj.contains_key("error") {
        return None;
    }
    match obj.remove("error") {
        Some(Value::Null) | None => Some(Ok(obj.remove("result").unwrap_or(Value::Null))),
        Some(e) => {
            let code = e["code"].as_i64().unwrap_or(0);
            let message = match &e["message"] {
                Value::String(s) => s.clone(),
                _ => e.to_string(),
            };
            Some(Err((code, message)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    /// What a fake node does with one request: answer with a status and body, or (None) keep
    /// the connection open without answering, like a node holding a long poll.
    type Answer = Box<dyn Fn(&str) -> Option<(u16, String)> + Send + Sync>;

    /// A tiny HTTP responder on 127.0.0.1 standing in for a node: it records every request
    /// (headers and body) and answers each as `answer` says.
    struct FakeNode {
        url: String,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl FakeNode {
        fn start(
            answer: impl Fn(&str) -> Option<(u16, String)> + Send + Sync + 'static,
        ) -> FakeNode {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let (seen, answer): (_, Arc<Answer>) = (requests.clone(), Arc::new(Box::new(answer)));
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    let (seen, answer) = (seen.clone(), answer.clone());
                    std::thread::spawn(move || serve(conn, &seen, &answer));
                }
            });
            FakeNode { url, requests }
        }

        /// A node that answers every request with this JSON-RPC body and status.
        fn answering(status: u16, body: &str) -> FakeNode {
            let body = body.to_string();
            FakeNode::start(move |_| Some((status, body.clone())))
        }

        fn requests(&self) -> Vec<String> {
            self.requests.lock().unwrap().clone()
        }
    }

    fn serve(conn: TcpStream, seen: &Mutex<Vec<String>>, answer: &Answer) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let request = head + &String::from_utf8_lossy(&body);
        seen.lock().unwrap().push(request.clone());
        let Some((status, text)) = answer(&request) else {
            std::thread::sleep(Duration::from_secs(5));
            return;
        };
        let mut conn = conn;
        let _ = write!(
            conn,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{text}",
            text.len()
        );
    }

    /// A URL where nothing listens.
    fn refused_url() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }

    fn rpc(urls: &[&str], extra: impl FnOnce(&mut BitcoindConfig)) -> Rpc {
        let mut cfg = BitcoindConfig {
            url: urls[0].to_string(),
            fallback_urls: urls[1..].iter().map(|u| u.to_string()).collect(),
            user: "u".into(),
            password: "p".into(),
            timeout_ms: 5000,
            ..Default::default()
        };
        extra(&mut cfg);
        Rpc::new(&cfg).unwrap()
    }

    #[test]
    fn one_client_serves_many_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Rpc>();
    }

    const COUNT_7: &str = r#"{"result":7,"error":null,"id":1}"#;

    #[test]
    fn a_node_that_refuses_connections_is_skipped_for_the_next() {
        let down = refused_url();
        let up = FakeNode::answering(200, COUNT_7);
        let r = rpc(&[&down, &up.url], |_| {});
        assert_eq!(r.endpoints(), 2);
        assert_eq!(r.block_count().unwrap(), 7);
        assert_eq!(up.requests().len(), 1);
        let body = up.requests()[0].clone();
        assert!(body.contains(r#""method":"getblockcount""#), "{body}");
        match r.call_at(0, "getblockcount", json!([])) {
            Err(RpcError::Unreachable(m)) => assert!(m.starts_with(&down), "{m}"),
            other => panic!("{other:?}"),
        }
        let both_down = rpc(&[&down, &refused_url()], |_| {});
        match both_down.block_count() {
            Err(RpcError::Unreachable(m)) => assert_eq!(m.matches("http://").count(), 2, "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_json_rpc_error_is_an_answer_whatever_the_status() {
        // Core answers a JSON-RPC 1.0 error with HTTP 500 (404 for an unknown method), btcd
        // with 200: neither moves on to the next node.
        for status in [500, 404, 200] {
            let first = FakeNode::answering(
                status,
                r#"{"result":null,"error":{"code":-8,"message":"bad height"},"id":1}"#,
            );
            let second = FakeNode::answering(200, COUNT_7);
            let r = rpc(&[&first.url, &second.url], |_| {});
            match r.call("getblockhash", json!([99])) {
                Err(RpcError::Node { url, code, message }) => {
                    assert_eq!(
                        (url.as_str(), code, message.as_str()),
                        (first.url.as_str(), -8, "bad height")
                    )
                }
                other => panic!("HTTP {status}: {other:?}"),
            }
            assert!(second.requests().is_empty(), "HTTP {status}");
        }
    }

    #[test]
    fn a_refused_login_or_an_error_page_is_no_answer() {
        let locked = FakeNode::answering(401, "");
        let busy = FakeNode::answering(503, "<html>Work queue depth exceeded</html>");
        let up = FakeNode::answering(200, COUNT_7);
        let r = rpc(&[&locked.url, &busy.url, &up.url], |_| {});
        assert_eq!(r.block_count().unwrap(), 7);
        let only_locked = rpc(&[&locked.url, &busy.url], |_| {});
        match only_locked.block_count() {
            Err(e @ RpcError::Unreachable(_)) => {
                let m = e.to_string();
                assert!(m.contains("HTTP 401") && m.contains("bitcoind.user"), "{m}");
                assert!(m.contains("503") && m.contains("Work queue"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        let auth = &locked.requests()[0];
        assert!(auth.contains("Basic dTpw"), "user u, password p: {auth}");
    }

    #[test]
    fn the_cookie_file_is_read_for_every_request() {
        let dir = std::env::temp_dir().join(format!("sharecheck-cookie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cookie = dir.join(".cookie");
        let node = FakeNode::answering(200, COUNT_7);
        let r = rpc(&[&node.url], |c| {
            c.user.clear();
            c.password.clear();
            c.cookie_file = Some(cookie.clone());
        });
        match r.block_count() {
            Err(RpcError::Unreachable(m)) => assert!(m.contains("cannot read cookie file"), "{m}"),
            other => panic!("{other:?}"),
        }
        for password in ["first", "second"] {
            std::fs::write(&cookie, format!("__cookie__:{password}\n")).unwrap();
            r.block_count().unwrap();
            let want = basic_auth(&format!("__cookie__:{password}"));
            let got = node.requests().pop().unwrap();
            assert!(got.contains(&want), "{want} in {got}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_password_file_gives_its_first_line() {
        let file = std::env::temp_dir().join(format!("sharecheck-rpcpass-{}", std::process::id()));
        std::fs::write(&file, "s3cret\r\nignored\n").unwrap();
        let node = FakeNode::answering(200, COUNT_7);
        let r = rpc(&[&node.url], |c| {
            c.password.clear();
            c.password_file = Some(file.clone());
        });
        r.block_count().unwrap();
        assert!(node.requests()[0].contains(&basic_auth("u:s3cret")));
        let _ = std::fs::remove_file(&file);
        let none = BitcoindConfig::default();
        let e = Rpc::new(&none).err().unwrap().to_string();
        assert!(e.contains("no RPC credentials"), "{e}");
    }

    #[test]
    fn submitblock_answers_become_accepted_or_a_reason() {
        for (body, want) in [
            (r#"{"result":null,"error":null,"id":1}"#, None),
            (
                r#"{"result":"duplicate","error":null,"id":1}"#,
                Some("duplicate"),
            ),
            (
                r#"{"result":null,"error":{"code":-22,"message":"Block decode failed"},"id":1}"#,
                Some("Block decode failed (-22)"),
            ),
        ] {
            let node = FakeNode::answering(200, body);
            let r = rpc(&[&node.url], |_| {});
            assert_eq!(
                r.submit_block_at(0, "00").unwrap().as_deref(),
                want,
                "{body}"
            );
        }
        let r = rpc(&[&refused_url()], |_| {});
        assert!(matches!(
            r.submit_block_at(0, "00"),
            Err(RpcError::Unreachable(_))
        ));
    }

    fn template_json(commitment: Option<&str>) -> String {
        let mut t = json!({
            "version": 536870912, "previousblockhash": "00".repeat(32), "transactions": [],
            "coinbasevalue": 5000000000u64, "coinbaseaux": {"flags": ""}, "bits": "207fffff",
            "height": 1, "curtime": 1700000000, "target": "7fffff".to_string() + &"00".repeat(29),
            "longpollid": "lp1"
        });
        if let Some(c) = commitment {
            t["default_witness_commitment"] = c.into();
        }
        json!({"result": t, "error": null, "id": 1}).to_string()
    }

    #[test]
    fn a_bare_witness_commitment_becomes_the_output_script() {
        let hash = "ab".repeat(32);
        let script = format!("{WITNESS_COMMITMENT_PREFIX}{hash}");
        for (sent, want) in [
            (Some(hash.as_str()), Some(&script)),
            (Some(&script), Some(&script)),
            (None, None),
        ] {
            let node = FakeNode::answering(200, &template_json(sent));
            let t = rpc(&[&node.url], |_| {}).block_template(None).unwrap();
            assert_eq!(t.default_witness_commitment.as_ref(), want);
            assert_eq!(t.height, 1);
            let asked = node.requests()[0].clone();
            assert!(asked.contains(r#""rules":["segwit"]"#), "{asked}");
        }
        let node = FakeNode::answering(200, r#"{"result":{"height":1},"error":null,"id":1}"#);
        let e = rpc(&[&node.url], |_| {}).block_template(None).unwrap_err();
        assert!(
            matches!(e, RpcError::Invalid(ref m) if m.contains("missing field")),
            "{e}"
        );
    }

    #[test]
    fn a_long_poll_that_runs_out_fetches_the_current_template() {
        // The node holds every long poll, as a node whose template does not change.
        let node = FakeNode::start(|req| {
            (!req.contains("longpollid")).then(|| (200, template_json(None)))
        });
        let r = rpc(&[&node.url], |c| c.longpoll_timeout_ms = 300);
        let started = std::time::Instant::now();
        let t = r.block_template(Some("lp1")).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(t.longpollid.as_deref(), Some("lp1"));
        let asked = node.requests();
        assert_eq!(asked.len(), 2, "{asked:?}");
        assert!(asked[0].contains(r#""longpollid":"lp1""#), "{}", asked[0]);
        assert!(!asked[1].contains("longpollid"), "{}", asked[1]);
    }
}
