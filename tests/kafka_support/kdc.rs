//! A Kerberos KDC of a test's own: scripts/kdc.sh in a services directory of its own, with
//! the realm SHARECHECK.TEST, keytabs for the broker (kafka/127.0.0.1), ZooKeeper
//! (zookeeper/127.0.0.1) and a client (sharecheck).

use super::free_port;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The realm scripts/kdc.sh makes.
pub const REALM: &str = "SHARECHECK.TEST";

fn kdc_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kdc.sh")
}

/// A KDC of the test's own (scripts/kdc.sh in a services directory of its own), stopped and
/// deleted on drop.
pub struct Kdc {
    root: PathBuf,
    port: u16,
}

impl Kdc {
    pub fn start() -> Kdc {
        let port = free_port();
        let root =
            std::env::temp_dir().join(format!("sharecheck-kdc-{}-{port}", std::process::id()));
        let kdc = Kdc { root, port };
        let out = kdc.command("up").output().expect("run scripts/kdc.sh");
        assert!(
            out.status.success(),
            "scripts/kdc.sh up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        kdc
    }

    fn command(&self, arg: &str) -> Command {
        let mut c = Command::new(kdc_script());
        c.arg(arg)
            .env("SHARECHECK_SERVICES_DIR", &self.root)
            .env("KDC_PORT", self.port.to_string());
        c
    }

    /// Where its krb5.conf and keytabs are.
    pub fn dir(&self) -> PathBuf {
        self.root.join("kdc")
    }

    /// `kadmin.local -q QUERY` on this realm.
    pub fn kadmin(&self, query: &str) {
        let kadmin = ["/usr/sbin/kadmin.local", "kadmin.local"]
            .into_iter()
            .find(|k| !k.starts_with('/') || Path::new(k).exists())
            .unwrap();
        let out = Command::new(kadmin)
            .args(["-q", query])
            .env("KRB5_CONFIG", self.dir().join("krb5.conf"))
            .env("KRB5_KDC_PROFILE", self.dir().join("kdc.conf"))
            .output()
            .expect("kadmin.local (krb5-admin-server)");
        assert!(
            out.status.success(),
            "kadmin.local -q {query:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = self.command("down").arg("--purge").output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
