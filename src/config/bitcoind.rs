//! The `[bitcoind]` table: the Bitcoin node (Bitcoin Core or btcd) whose JSON-RPC the job
//! maker asks for block templates and the block submitter sends blocks to.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// `[bitcoind]` settings. Every endpoint shares one set of credentials.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BitcoindConfig {
    /// The node's JSON-RPC URL, `http://host:port` (Core's mainnet port is 8332, btcd's
    /// 8334). Plain HTTP only: Core serves nothing else, and btcd with `--notls`. Default
    /// `http://127.0.0.1:8332`.
    pub url: String,
    /// More nodes, tried in order when the ones before do not answer; block submission
    /// sends every block to each of them. Default empty.
    pub fallback_urls: Vec<String>,
    /// RPC user (Core's `rpcuser` or an `rpcauth` entry, btcd's `rpcuser`). Default empty.
    pub user: String,
    /// RPC password. Prefer `password_file` or `cookie_file`, which keep it out of this file.
    /// Default empty.
    pub password: String,
    /// A file whose first line is the RPC password, read at start. Default none.
    pub password_file: Option<PathBuf>,
    /// Bitcoin Core's `.cookie` (`user:password` on one line, e.g.
    /// `~/.bitcoin/.cookie`), read again for every request because Core writes a new one
    /// at each start. Instead of user and password. Default none.
    pub cookie_file: Option<PathBuf>,
    /// Longest wait for a node's answer to one request, connect included; a node that takes
    /// longer counts as not answering and the next URL is tried. Default 30000.
    pub timeout_ms: u64,
    /// Longest a long-polling `getblocktemplate` waits for the template to change. At the
    /// limit the client asks for the current template without waiting, so jobs are renewed
    /// at least this often even when nothing changes. Default 60000.
    pub longpoll_timeout_ms: u64,
}

impl Default for BitcoindConfig {
    fn default() -> Self {
        BitcoindConfig {
            url: "http://127.0.0.1:8332".into(),
            fallback_urls: Vec::new(),
            user: String::new(),
            password: String::new(),
            password_file: None,
            cookie_file: None,
            timeout_ms: 30_000,
            longpoll_timeout_ms: 60_000,
        }
    }
}

/// Written by hand so that a logged config never shows the password.
impl fmt::Debug for BitcoindConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = if self.password.is_empty() { "" } else { "***" };
        f.debug_struct("BitcoindConfig")
            .field("url", &self.url)
            .field("fallback_urls", &self.fallback_urls)
            .field("user", &self.user)
            .field("password", &password)
            .field("password_file", &self.password_file)
            .field("cookie_file", &self.cookie_file)
            .field("timeout_ms", &self.timeout_ms)
            .field("longpoll_timeout_ms", &self.longpoll_timeout_ms)
            .finish()
    }
}

impl BitcoindConfig {
    /// `url`, then `fallback_urls`, in the order they are tried.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.url.as_str()).chain(self.fallback_urls.iter().map(String::as_str))
    }

    /// The rules serde cannot express. No credentials at all is allowed here (the table is
    /// only used by the commands that talk to a node, which refuse it when they start).
    pub fn check(&self) -> anyhow::Result<()> {
        for (i, url) in self.urls().enumerate() {
            let key = if i == 0 {
                "bitcoind.url".to_string()
            } else {
                format!("bitcoind.fallback_urls[{}]", i - 1)
            };
            check_url(url).map_err(|e| anyhow::anyhow!("{key} = {url:?}: {e}"))?;
        }
        anyhow::ensure!(
            self.timeout_ms > 0 && self.longpoll_timeout_ms > 0,
            "bitcoind.timeout_ms and bitcoind.longpoll_timeout_ms must be at least 1"
        );
        let has_user = !self.user.is_empty();
        let has_password = !self.password.is_empty() || self.password_file.is_some();
        if self.cookie_file.is_some() {
            anyhow::ensure!(
                !has_user && !has_password,
                "bitcoind: set either cookie_file or user and password (or password_file), not both"
            );
        }
        anyhow::ensure!(
            self.password.is_empty() || self.password_file.is_none(),
            "bitcoind: set either password or password_file, not both"
        );
        anyhow::ensure!(
            has_user == has_password,
            "bitcoind: user and password (or password_file) go together; set both or neither"
        );
        Ok(())
    }
}

/// An `http://host[:port][/path]` URL without credentials in it.
fn check_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("not a URL ({e}); write it as http://host:port"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(
                "https is not supported (this build has no TLS; Bitcoin Core serves \
                        plain HTTP, btcd does with --notls): use http://, over a private \
                        network or a tunnel"
                    .into(),
            )
        }
        _ => return Err("the URL must start with http://".into()),
    }
    let authority = uri.authority().ok_or("the URL has no host")?;
    if authority.as_str().contains('@') {
        return Err(
            "credentials go in bitcoind.user and password (or password_file, \
                    cookie_file), not in the URL"
                .into(),
        );
    }
    if authority.host().is_empty() {
        return Err("the URL has no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn credentials_come_in_one_form() {
        for ok in [
            "",
            "[bitcoind]\nuser = \"u\"\npassword = \"p\"\n",
            "[bitcoind]\nuser = \"u\"\npassword_file = \"/run/secrets/rpc\"\n",
            "[bitcoind]\ncookie_file = \"/var/lib/bitcoind/.cookie\"\n",
        ] {
            Config::parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for (bad, says) in [
            ("[bitcoind]\nuser = \"u\"\n", "go together"),
            ("[bitcoind]\npassword = \"p\"\n", "go together"),
            (
                "[bitcoind]\nuser = \"u\"\npassword = \"p\"\ncookie_file = \"c\"\n",
                "not both",
            ),
            (
                "[bitcoind]\nuser = \"u\"\npassword = \"p\"\npassword_file = \"f\"\n",
                "not both",
            ),
        ] {
            let e = Config::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn urls_must_be_plain_http_with_a_host() {
        let c = Config::parse(
            "[bitcoind]\nurl = \"http://10.0.0.1:8332\"\nfallback_urls = [\"http://node-b:8332/\"]\n",
        )
        .unwrap();
        let urls: Vec<&str> = c.bitcoind.urls().collect();
        assert_eq!(urls, ["http://10.0.0.1:8332", "http://node-b:8332/"]);
        for (bad, says) in [
            ("url = \"127.0.0.1:8332\"", "http://"),
            ("url = \"https://node:8332\"", "no TLS"),
            ("url = \"http://u:p@node:8332\"", "not in the URL"),
            ("url = \"not a url\"", "not a URL"),
            ("fallback_urls = [\"ftp://x\"]", "fallback_urls[0]"),
            ("timeout_ms = 0", "timeout_ms"),
        ] {
            let e = Config::parse(&format!("[bitcoind]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Config::parse("[bitcoind]\nuser = \"u\"\npassword = \"hunter2\"\n").unwrap();
        let shown = format!("{:?}", c.bitcoind);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
