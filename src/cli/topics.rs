//! `sharecheck topics create`: the topics of the config.

use sharecheck::config::Config;
use sharecheck::kafka::TopicOutcome;

pub fn create(cfg: &Config) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    let out = super::runtime()?.block_on(sharecheck::kafka::create_topics(&cfg.kafka))?;
    for (name, outcome) in out {
        let what = match outcome {
            TopicOutcome::Created => "created",
            TopicOutcome::Existed => "exists",
        };
        println!("{name}: {what}");
    }
    Ok(())
}
