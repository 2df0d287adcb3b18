//! The program's log: tracing to stderr, as text or JSON Lines, filtered by `log.level`
//! (or RUST_LOG).

use sharecheck::config::{Config, LogFormat};

pub fn init_logging(cfg: &Config) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .map_err(|e| anyhow::anyhow!("log.level {:?}: {e}", cfg.log.level))?;
    // The ZooKeeper client logs every connection at info; sharecheck logs what matters.
    if std::env::var_os("RUST_LOG").is_none() && !cfg.log.level.contains("zookeeper_client") {
        filter = filter.add_directive("zookeeper_client=warn".parse()?);
    }
    // Colours only on a terminal: a log redirected to a file or a journal stays plain text.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let r = match cfg.log.format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
    r.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
