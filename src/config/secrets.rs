//! Secrets kept out of the config file: read from files the config names (or the
//! environment) when the config is loaded, held in memory only, and never printed.

use std::path::Path;

/// The environment variable that gives every Kafka client's `sasl.password`, in place of
/// a `kafka.secret_files` entry (a systemd credential, a secrets manager).
pub const KAFKA_SASL_PASSWORD_ENV: &str = "SHARECHECK_KAFKA_SASL_PASSWORD";

/// librdkafka options whose values are secret, resolved at load. Debug shows the names.
#[derive(Clone, Default, PartialEq)]
pub struct Secrets(Vec<(String, String)>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "Secrets({names:?})")
    }
}

impl Secrets {
    /// Reads each file of `files` (option → path) and, when set, the password variable.
    pub fn resolve<'a>(
        files: impl IntoIterator<Item = (&'a String, &'a std::path::PathBuf)>,
    ) -> anyhow::Result<Secrets> {
        let mut out = Vec::new();
        for (key, path) in files {
            let v = read_secret(path)
                .map_err(|e| e.context(format!("kafka.secret_files.\"{key}\"")))?;
            out.push((key.clone(), v));
        }
        if let Some(v) = std::env::var_os(KAFKA_SASL_PASSWORD_ENV).filter(|v| !v.is_empty()) {
            let v = v
                .into_string()
                .map_err(|_| anyhow::anyhow!("{KAFKA_SASL_PASSWORD_ENV} is not UTF-8"))?;
            out.retain(|(k, _)| k != "sasl.password");
            out.push(("sasl.password".into(), v));
        }
        Ok(Secrets(out))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A secret file's content without its trailing line end; a warning when other users can
/// read it.
pub fn read_secret(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the secret file {}: {e}", path.display()))?;
    warn_if_readable_by_others(path);
    let v = text.trim_end_matches(['\n', '\r']).to_string();
    anyhow::ensure!(!v.is_empty(), "the secret file {} is empty", path.display());
    Ok(v)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "the secret file {} can be read by other users (chmod 600 it)",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_files_and_are_not_printed() {
        let dir = std::env::temp_dir().join(format!("sharecheck-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "hunter2\n").unwrap();
        let files: std::collections::BTreeMap<String, std::path::PathBuf> =
            [("ssl.key.password".to_string(), f.clone())].into();
        let s = Secrets::resolve(&files).unwrap();
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [("ssl.key.password", "hunter2")]
        );
        assert!(!format!("{s:?}").contains("hunter2"));
        std::fs::write(&f, "\n").unwrap();
        assert!(Secrets::resolve(&files).is_err(), "an empty secret");
        let missing: std::collections::BTreeMap<String, std::path::PathBuf> =
            [("sasl.password".to_string(), dir.join("nope"))].into();
        let e = Secrets::resolve(&missing).unwrap_err();
        assert!(format!("{e:#}").contains("kafka.secret_files"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
