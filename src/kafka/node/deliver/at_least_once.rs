//! At-least-once delivery: every output is produced until acknowledged, and a share
//! message's offset is stored once all of its outputs are; librdkafka commits the stored
//! offsets periodically. After a crash the uncommitted tail is validated again and readers
//! drop the repeats by source partition and offset.

use super::{completed, count_batch, count_shares, produce, Delivery};
use crate::kafka::node::clients::Shared;
use crate::kafka::node::gather::Work;
use crate::kafka::node::hash::{Hashed, StatusCounts};
use crate::kafka::node::ownership::Epoch;
use crate::kafka::source_headers;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::DeliveryFuture;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub struct AtLeastOnce {
    sh: Arc<Shared>,
    /// Batches produced and waiting for their acknowledgements.
    acks: tokio::task::JoinSet<()>,
}

impl AtLeastOnce {
    pub fn new(sh: Arc<Shared>) -> AtLeastOnce {
        AtLeastOnce {
            sh,
            acks: tokio::task::JoinSet::new(),
        }
    }
}

/// A share message's output on its way: kept until acknowledged, to produce it again after
/// a failed delivery.
struct Pending {
    epoch: Epoch,
    offset: i64,
    key: Option<Vec<u8>>,
    msgs: Vec<(String, Vec<u8>)>,
    futs: Vec<DeliveryFuture>,
}

impl Delivery for AtLeastOnce {
    /// Produces the verdict message of every share message in a hashed batch (and a block
    /// message per block), then, in a task, waits for the acknowledgements and stores
    /// offsets.
    ///
    /// The batch's in-flight permit is released once its messages are with the producer, so
    /// the backend goes on with the next batches during the broker's round trip; an
    /// unacknowledged batch holds a `kafka.max_unacked_batches` permit instead, and only its
    /// output (not its shares) until the acknowledgement.
    async fn submit(&mut self, h: Hashed) {
        let sh = &self.sh;
        let Hashed { work, out } = h;
        let Ok(unacked) = sh.unacked.clone().acquire_owned().await else {
            return;
        };
        let topics = &sh.cfg.kafka.topics;
        let Work {
            items,
            shares,
            fetched,
            inflight,
            permit,
            ..
        } = work;
        let mut outs = Vec::with_capacity(items.len());
        let mut counts = StatusCounts::default();
        for (item, enc) in items.into_iter().zip(out) {
            for (c, n) in counts.iter_mut().zip(enc.counts) {
                *c += n;
            }
            let msgs = enc.messages(topics);
            let mut futs = Vec::with_capacity(msgs.len());
            for (t, p) in &msgs {
                let headers = source_headers(&topics.shares, item.epoch.partition, item.offset);
                match produce(&sh.producer, t, item.key.as_deref(), p, headers).await {
                    Ok(f) => futs.push(f),
                    Err(e) => tracing::warn!("cannot produce to {t}: {e}"),
                }
            }
            outs.push(Pending {
                epoch: item.epoch,
                offset: item.offset,
                key: item.key,
                msgs,
                futs,
            });
        }
        count_shares(&sh.metrics, &counts);
        count_batch(&sh.metrics, shares);
        // Everything is with the producer: the backend may take the next batch.
        drop(permit);
        let sh = sh.clone();
        self.acks.spawn(async move {
            let mut done = Vec::with_capacity(outs.len());
            for o in outs {
                let shares = &sh.cfg.kafka.topics.shares;
                let headers = || source_headers(shares, o.epoch.partition, o.offset);
                if !deliver(&sh, &o.msgs, o.key.as_deref(), &headers, o.futs).await {
                    // Shutdown ran out of time: what was acknowledged is still stored.
                    break;
                }
                done.push((o.epoch, o.offset));
            }
            completed(&sh, &done);
            sh.metrics
                .batch_latency
                .observe(fetched.elapsed().as_secs_f64());
            drop((inflight, unacked));
        });
        while self.acks.try_join_next().is_some() {}
    }

    async fn finish(mut self) {
        while self.acks.join_next().await.is_some() {}
    }
}

/// Waits for `futs`, the deliveries of `msgs` (topic, payload) for one source message, and
/// produces them again until all are acknowledged, with the headers `headers` makes (built
/// again for each retry rather than kept: a header set is a librdkafka allocation, and
/// copying and freeing one per message cost more than building it). Returns false if
/// shutdown ran out of time first (the offset is then not stored and the message is
/// validated again after restart).
pub async fn deliver(
    sh: &Shared,
    msgs: &[(String, Vec<u8>)],
    key: Option<&[u8]>,
    headers: &(dyn Fn() -> OwnedHeaders + Send + Sync),
    mut futs: Vec<DeliveryFuture>,
) -> bool {
    loop {
        let mut ok = futs.len() == msgs.len();
        for f in futs.drain(..) {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    tracing::warn!("verdict delivery failed ({e}); producing again");
                    ok = false;
                }
                Err(_) => ok = false,
            }
        }
        if ok {
            return true;
        }
        if sh.abort.load(Ordering::Relaxed) {
            return false;
        }
        sh.metrics.delivery_retries.inc();
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (topic, payload) in msgs {
            match produce(&sh.producer, topic, key, payload, headers()).await {
                Ok(f) => futs.push(f),
                Err(e) => tracing::warn!("cannot produce to {topic}: {e}"),
            }
        }
    }
}
