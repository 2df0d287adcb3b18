//! `sharecheck cluster status`: the ZooKeeper group beside the Kafka offsets.

use sharecheck::balance::status;
use sharecheck::config::Config;

pub fn status(cfg: &Config, json: bool) -> anyhow::Result<()> {
    super::init_logging(cfg)?;
    let b = &cfg.balance;
    anyhow::ensure!(
        b.is_zookeeper(),
        "cluster status shows a ZooKeeper group: it needs balance.mode = \"zookeeper\" (with \
         balance.mode = \"kafka\" the nodes are members of Kafka's consumer group {:?}; \
         kafka-consumer-groups.sh --describe --group {} shows it)",
        cfg.kafka.group_id,
        cfg.kafka.group_id
    );
    let zk = super::runtime()?.block_on(status::read_zk(
        &b.zookeeper,
        &b.group,
        std::time::Duration::from_millis(b.session_timeout_ms),
        sharecheck::balance::auth::ZkAuth::from_config(b)?.as_ref(),
    ))?;
    let kafka = sharecheck::kafka::group::offsets(&cfg.kafka)?;
    let s = status::combine(cfg, zk, kafka);
    if json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        print!("{}", status::render(&s));
    }
    Ok(())
}
