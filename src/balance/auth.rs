//! Who may read and change a group's znodes. Without credentials every znode is created
//! world-writable, and anyone who reaches ZooKeeper can register a ghost member with an
//! absurd capacity, squat the election, or rewrite owners so that two nodes validate one
//! partition. With `balance.zookeeper_auth_file` (or `SHARECHECK_ZOOKEEPER_AUTH`) every
//! session authenticates, with ZooKeeper's digest scheme or (with
//! `balance.zookeeper_auth_scheme = "sasl"`) SASL DIGEST-MD5 against the server's JAAS
//! users; with `"kerberos"` by SASL GSSAPI, with the process's Kerberos ticket instead of a
//! password. Every znode a session creates gets the ACL "all rights to the creator's
//! identity, none to anyone else": the nodes of a group share one identity (`digest:user:…`,
//! `sasl:user` or `sasl:principal@REALM`), and a client without it can neither read nor
//! change the group.
//! The digest scheme sends the password in clear, SASL a challenge's answer; either way the
//! session itself is unencrypted unless it uses TLS (`balance.zookeeper_tls`,
//! [`super::tls`]), which [`ZkAuth`] carries beside the credentials.

use super::tls::ZkTls;
use crate::config::{BalanceConfig, ZkAuthScheme};
use zookeeper_client::{
    Acl, Acls, AuthId, Client, Connector, CreateMode, Error as ZkError, Permission, SaslOptions,
};

/// The environment variable that gives the credentials (`user:password`) instead of the
/// file, e.g. from a systemd credential or a secrets manager.
pub const AUTH_ENV: &str = "SHARECHECK_ZOOKEEPER_AUTH";

/// What a node's sessions show ZooKeeper: an identity (`user:password` by the digest
/// scheme or SASL, or a Kerberos ticket), TLS ([`super::tls`]), or both. Debug shows the
/// user only.
#[derive(Clone)]
pub struct ZkAuth {
    identity: Option<Identity>,
    tls: Option<ZkTls>,
}

#[derive(Clone)]
enum Identity {
    /// `user:password`, by the digest scheme or SASL DIGEST-MD5.
    Password(Digest),
    /// SASL GSSAPI: the principal of the process's Kerberos ticket (the credential cache of
    /// `KRB5CCNAME`, or one the Kerberos library gets from `KRB5_CLIENT_KTNAME`'s keytab).
    #[cfg_attr(not(feature = "gssapi"), allow(dead_code))]
    Kerberos,
}

#[derive(Clone)]
struct Digest {
    user: String,
    /// `user:password`, as the digest scheme sends it.
    credentials: Vec<u8>,
    scheme: ZkAuthScheme,
}

impl std::fmt::Debug for ZkAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZkAuth(")?;
        match &self.identity {
            Some(Identity::Password(d)) => {
                let sasl = if d.scheme == ZkAuthScheme::Sasl {
                    "sasl:"
                } else {
                    ""
                };
                write!(f, "{sasl}{}:***", d.user)?;
            }
            Some(Identity::Kerberos) => write!(f, "kerberos")?,
            None => {}
        }
        if let Some(t) = &self.tls {
            let sep = if self.identity.is_some() { ", " } else { "" };
            write!(f, "{sep}{t:?}")?;
        }
        write!(f, ")")
    }
}

impl ZkAuth {
    /// Digest credentials `user:password`, both non-empty.
    pub fn parse(text: &str) -> anyhow::Result<ZkAuth> {
        let text = text.trim_end_matches(['\n', '\r']);
        match text.split_once(':') {
            Some((user, pass)) if !user.is_empty() && !pass.is_empty() => Ok(ZkAuth {
                identity: Some(Identity::Password(Digest {
                    user: user.to_string(),
                    credentials: text.as_bytes().to_vec(),
                    scheme: ZkAuthScheme::Digest,
                })),
                tls: None,
            }),
            _ => anyhow::bail!("ZooKeeper credentials must be `user:password`, both non-empty"),
        }
    }

    /// What `b` names: Kerberos with `balance.zookeeper_auth_scheme = "kerberos"`, else the
    /// credentials of the environment variable if set, else of the file, else none; and TLS
    /// with `balance.zookeeper_tls`. None: neither.
    pub fn from_config(b: &BalanceConfig) -> anyhow::Result<Option<ZkAuth>> {
        let password = Self::digest_from_config(b)?.and_then(|a| a.identity);
        let identity = match (b.zookeeper_auth_scheme, password) {
            (ZkAuthScheme::Kerberos, None) => Some(kerberos()?),
            (ZkAuthScheme::Kerberos, Some(_)) => anyhow::bail!(
                "balance.zookeeper_auth_scheme = \"kerberos\" takes no password: remove \
                 balance.zookeeper_auth_file and {AUTH_ENV} (the Kerberos ticket authenticates)"
            ),
            (ZkAuthScheme::Sasl, None) => anyhow::bail!(
                "balance.zookeeper_auth_scheme = \"sasl\" needs credentials: \
                 balance.zookeeper_auth_file or {AUTH_ENV}"
            ),
            (scheme, Some(Identity::Password(d))) => {
                Some(Identity::Password(Digest { scheme, ..d }))
            }
            (_, other) => other,
        };
        let tls = ZkTls::from_config(b)?;
        if identity.is_none() && tls.is_none() {
            return Ok(None);
        }
        Ok(Some(ZkAuth { identity, tls }))
    }

    fn digest_from_config(b: &BalanceConfig) -> anyhow::Result<Option<ZkAuth>> {
        if let Some(v) = std::env::var_os(AUTH_ENV).filter(|v| !v.is_empty()) {
            let v = v
                .into_string()
                .map_err(|_| anyhow::anyhow!("{AUTH_ENV} is not UTF-8"))?;
            return ZkAuth::parse(&v).map(Some).map_err(|e| e.context(AUTH_ENV));
        }
        let Some(path) = &b.zookeeper_auth_file else {
            return Ok(None);
        };
        let text = crate::config::secrets::read_secret(path)
            .map_err(|e| e.context("balance.zookeeper_auth_file"))?;
        ZkAuth::parse(&text)
            .map(Some)
            .map_err(|e| e.context(format!("balance.zookeeper_auth_file {}", path.display())))
    }

    /// `c` presenting this identity: the digest scheme's `addauth` at the start of the
    /// session, or a SASL exchange (DIGEST-MD5 or GSSAPI) before it (a refusal is then
    /// [`ZkError::AuthFailed`] when connecting).
    pub fn present(&self, c: Connector) -> Connector {
        match &self.identity {
            None => c,
            Some(Identity::Kerberos) => present_kerberos(c),
            Some(Identity::Password(d)) if d.scheme == ZkAuthScheme::Sasl => {
                let text = String::from_utf8_lossy(&d.credentials);
                let pass = text.split_once(':').map_or("", |(_, p)| p).to_string();
                c.with_sasl(SaslOptions::digest_md5(d.user.clone(), pass))
            }
            Some(Identity::Password(d)) => c.with_auth("digest", &d.credentials),
        }
    }

    /// Whether the session authenticates (by any scheme).
    pub fn has_credentials(&self) -> bool {
        self.identity.is_some()
    }

    /// The TLS settings, if any.
    pub fn tls(&self) -> Option<&ZkTls> {
        self.tls.as_ref()
    }
}

/// Kerberos, where this build has it.
#[cfg(feature = "gssapi")]
fn kerberos() -> anyhow::Result<Identity> {
    Ok(Identity::Kerberos)
}

#[cfg(not(feature = "gssapi"))]
fn kerberos() -> anyhow::Result<Identity> {
    anyhow::bail!(
        "balance.zookeeper_auth_scheme = \"kerberos\": this sharecheck is built without \
         Kerberos; build it with `cargo build --release --features gssapi` (needs Debian's \
         libkrb5-dev, libclang-dev and libsasl2-dev; docs/security.md)"
    )
}

/// SASL GSSAPI to the server's principal `zookeeper/<the host dialled>`.
#[cfg(feature = "gssapi")]
fn present_kerberos(c: Connector) -> Connector {
    c.with_sasl(SaslOptions::gssapi())
}

#[cfg(not(feature = "gssapi"))]
fn present_kerberos(c: Connector) -> Connector {
    // Not reached: [`kerberos`] refuses the config in this build.
    c
}

/// Whether `auth` has an identity: what decides the znodes' ACLs.
fn identity(auth: Option<&ZkAuth>) -> Option<&Identity> {
    auth.and_then(|a| a.identity.as_ref())
}

/// The ACL of every znode a session creates: its own identity's with credentials, anyone's
/// without. (TLS alone gives no shared identity: each node's certificate is its own.)
pub fn acls(auth: Option<&ZkAuth>) -> Acls<'static> {
    match identity(auth) {
        Some(_) => Acls::creator_all(),
        None => Acls::anyone_all(),
    }
}

/// Creates `/sharecheck`, the parent every group shares, unless it exists. With credentials
/// anyone may list it and create a group of their own under it (groups with other
/// identities share it), and only this identity may do more; without, anyone may do all.
pub async fn ensure_parent(c: &Client, parent: &str, auth: Option<&ZkAuth>) -> anyhow::Result<()> {
    let shared = [
        Acl::new(Permission::ALL, AuthId::authed()),
        Acl::new(Permission::READ | Permission::CREATE, AuthId::anyone()),
    ];
    let acls = match identity(auth) {
        Some(_) => Acls::new(&shared),
        None => Acls::anyone_all(),
    };
    match c
        .create(parent, b"", &CreateMode::Persistent.with_acls(acls))
        .await
    {
        Ok(_) | Err(ZkError::NodeExists) => Ok(()),
        Err(e) => anyhow::bail!("cannot create {parent}: {e}{}", hint(&e)),
    }
}

/// Says once per session, as a warning, when the group's znodes can be changed by anyone:
/// no credentials configured, or (with them) znodes created by an earlier run without.
pub async fn warn_if_open(c: &Client, dirs: &[String], auth: Option<&ZkAuth>) {
    if identity(auth).is_none() {
        tracing::warn!(
            "ZooKeeper without authentication: anyone who reaches it can rewrite this group's \
             members, election and owners (set balance.zookeeper_auth_file, docs/security.md)"
        );
        return;
    }
    let writable = Permission::WRITE | Permission::CREATE | Permission::DELETE;
    for dir in dirs {
        match c.get_acl(dir).await {
            Ok((list, _)) => {
                let open = list.iter().any(|a| {
                    a.scheme() == "world" && (a.permission() & writable) != Permission::NONE
                });
                if open {
                    tracing::warn!(
                        "ZooKeeper: {dir} can be changed by anyone (created without \
                         credentials); delete the group's znodes (zkCli.sh deleteall) while no \
                         node runs, or set their ACL, so that only the nodes' identity can"
                    );
                    return;
                }
            }
            Err(e) => tracing::warn!("ZooKeeper: cannot read the ACL of {dir}: {e}"),
        }
    }
}

/// The ZooKeeper servers of `connect` (`host:port,host:port[/chroot]`) that digest-scheme
/// credentials would reach in clear: none without them (SASL sends no password, Kerberos
/// none at all) or with TLS, and none on loopback (the credentials do not leave the host).
pub fn clear_credentials_to(connect: &str, auth: Option<&ZkAuth>) -> Vec<String> {
    let digest_scheme = |a: &ZkAuth| matches!(&a.identity, Some(Identity::Password(d)) if d.scheme == ZkAuthScheme::Digest);
    if !auth.is_some_and(|a| digest_scheme(a) && a.tls.is_none()) {
        return Vec::new();
    }
    let servers = connect.split('/').next().unwrap_or("");
    servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && !is_loopback(host_of(s)))
        .map(str::to_string)
        .collect()
}

/// The host of `host:port`, `[v6]:port`, or a bare host.
fn host_of(server: &str) -> &str {
    if let Some(rest) = server.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match server.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => server,
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Says once per session, as a warning, when the digest credentials cross the network in
/// clear (credentials, no TLS, a server off this host).
pub fn warn_if_clear(connect: &str, auth: Option<&ZkAuth>) {
    let servers = clear_credentials_to(connect, auth);
    if !servers.is_empty() {
        tracing::warn!(
            "ZooKeeper digest credentials cross the network in clear to {}: anyone on the way \
             can read them and take over the group (set balance.zookeeper_tls, \
             docs/security.md)",
            servers.join(", ")
        );
    }
}

/// A hint for a ZooKeeper error: NoAuth means the credentials are not the group's,
/// AuthFailed that the server refused them.
pub fn hint(e: &ZkError) -> &'static str {
    match e {
        ZkError::AuthFailed => {
            " (the server refused this client's credentials: check balance.zookeeper_auth_file \
             or SHARECHECK_ZOOKEEPER_AUTH, and balance.zookeeper_auth_scheme; with Kerberos, \
             the ticket: KRB5_CONFIG, KRB5CCNAME or KRB5_CLIENT_KTNAME)"
        }
        ZkError::NoAuth => {
            " (not allowed: this client's credentials are not the identity that created the \
             group's znodes; check balance.zookeeper_auth_file or SHARECHECK_ZOOKEEPER_AUTH)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_user_colon_password() {
        let a = ZkAuth::parse("pool:s3cret:x\n").unwrap();
        let Some(Identity::Password(d)) = &a.identity else {
            panic!("a password");
        };
        assert_eq!(d.credentials.as_slice(), &b"pool:s3cret:x"[..]);
        assert!(a.has_credentials());
        assert_eq!(format!("{a:?}"), "ZkAuth(pool:***)");
        for bad in ["", "pool", "pool:", ":pw", "\n"] {
            assert!(ZkAuth::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kerberos_takes_no_password_and_needs_the_gssapi_build() {
        let b = BalanceConfig {
            zookeeper_auth_scheme: ZkAuthScheme::Kerberos,
            ..BalanceConfig::default()
        };
        let got = ZkAuth::from_config(&b);
        #[cfg(feature = "gssapi")]
        {
            let a = got.unwrap().expect("an identity");
            assert!(a.has_credentials());
            assert_eq!(format!("{a:?}"), "ZkAuth(kerberos)");
            // Kerberos sends no password, in clear or otherwise.
            assert!(clear_credentials_to("10.0.0.7:2181", Some(&a)).is_empty());
        }
        #[cfg(not(feature = "gssapi"))]
        assert!(got.unwrap_err().to_string().contains("--features gssapi"));
        let dir = std::env::temp_dir().join(format!("sharecheck-zkauth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("zk.secret");
        std::fs::write(&file, "pool:pw\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let with_file = BalanceConfig {
            zookeeper_auth_file: Some(file),
            ..b
        };
        let e = ZkAuth::from_config(&with_file).unwrap_err().to_string();
        assert!(e.contains("takes no password"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn credentials_in_clear_off_this_host_are_found() {
        let a = ZkAuth::parse("pool:pw").unwrap();
        let connect = "127.0.0.1:2181, localhost:2182,[::1]:2183,10.0.0.7:2181,zk-b:2181/pools";
        assert_eq!(
            clear_credentials_to(connect, Some(&a)),
            vec!["10.0.0.7:2181".to_string(), "zk-b:2181".to_string()]
        );
        assert!(clear_credentials_to("127.0.0.1:2181", Some(&a)).is_empty());
        assert!(clear_credentials_to("[2001:db8::1]:2181", None).is_empty());
        assert_eq!(
            clear_credentials_to("[2001:db8::1]:2181,zk", Some(&a)),
            vec!["[2001:db8::1]:2181".to_string(), "zk".to_string()]
        );
        // SASL sends a challenge's answer, not the password.
        let Some(Identity::Password(d)) = a.identity.clone() else {
            panic!("a password");
        };
        let sasl = ZkAuth {
            identity: Some(Identity::Password(Digest {
                scheme: ZkAuthScheme::Sasl,
                ..d
            })),
            tls: None,
        };
        assert!(clear_credentials_to(connect, Some(&sasl)).is_empty());
        assert_eq!(format!("{sasl:?}"), "ZkAuth(sasl:pool:***)");
        let tls = ZkAuth {
            tls: Some(ZkTls::test_only()),
            ..a
        };
        assert!(clear_credentials_to(connect, Some(&tls)).is_empty());
    }
}
