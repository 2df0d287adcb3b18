//! At-least-once delivery: every output is produced until acknowledged, and a share
//! message's offset is stored once all of its outputs are; librdkafka commits the stored
//! offsets periodically. After a crash the uncommitted tail is validated again and readers
//! drop the repeats by source partition and offset.

use super::dead_letter::{refused, DeadLetter};
use super::{completed, count_batch, count_shares, produce, Delivery};
use crate::kafka::node::clients::Shared;
use crate::kafka::node::gather::Work;
use crate::kafka::node::hash::{Hashed, Output, StatusCounts};
use crate::kafka::node::ownership::Epoch;
use crate::kafka::source_headers;
use rdkafka::error::KafkaError;
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
    /// The verdict message and the block messages, or the dead letter.
    msgs: Vec<Output>,
    futs: Vec<DeliveryFuture>,
    /// Why the last production did not hand every message to librdkafka.
    not_produced: Option<KafkaError>,
    /// The dead letter, when the message was not a share batch (`msgs` holds it then).
    dead: Option<DeadLetter>,
    /// Times the broker refused the dead letter for good.
    refusals: u32,
}

impl Pending {
    fn headers(&self, shares_topic: &str) -> OwnedHeaders {
        match &self.dead {
            Some(d) => d.headers(),
            None => source_headers(shares_topic, self.epoch.partition, self.offset),
        }
    }

    /// Hands every message to librdkafka.
    async fn produce(&mut self, sh: &Shared) {
        self.not_produced = None;
        for m in &self.msgs {
            let headers = m.headers(self.headers(&sh.cfg.kafka.topics.shares));
            match produce(
                &sh.producer,
                (&m.topic, m.partition),
                self.key.as_deref(),
                &m.payload,
                headers,
            )
            .await
            {
                Ok(f) => self.futs.push(f),
                Err(e) => self.not_produced = Some(e),
            }
        }
    }

    /// Waits for every delivery; the first error if any failed.
    async fn acknowledged(&mut self) -> Result<(), KafkaError> {
        let mut err = self.not_produced.take();
        for f in self.futs.drain(..) {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => err = err.or(Some(e)),
                Err(_) => err = err.or(Some(KafkaError::Canceled)),
            }
        }
        err.map_or(Ok(()), Err)
    }

    /// The broker refused the dead letter for good (`why`): the next try sends a reference
    /// to it without payload; after a second refusal it is given up. True while there is
    /// something left to try.
    fn refused(&mut self, why: &str, sh: &Shared) -> bool {
        let Some(d) = &self.dead else { return true };
        self.refusals += 1;
        let p = self.epoch.partition;
        if self.refusals > 1 {
            tracing::error!(
                partition = p,
                offset = self.offset,
                "the broker refused even a reference to the dead letter ({why}); the \
                 message is left where it is, and the partition moves on"
            );
            return false;
        }
        tracing::warn!(
            partition = p,
            offset = self.offset,
            "the broker refused the dead letter ({why}); sending a reference to it"
        );
        sh.metrics.dead_letters_cut.inc();
        let r = d.reference(why);
        self.msgs = vec![Output::to(&sh.cfg.kafka.topics.dead_letter, Vec::new())];
        self.dead = Some(r);
        true
    }
}

impl Delivery for AtLeastOnce {
    /// Produces the outputs of every share message in a hashed batch (its verdict message
    /// and a block message per block, or its dead letter), then, in a task, waits for the
    /// acknowledgements and stores offsets.
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
            let (key, msgs) = match &item.dead {
                Some(d) => (
                    d.key.clone(),
                    vec![Output::to(&topics.dead_letter, d.payload.clone())],
                ),
                None => {
                    for (c, n) in counts.iter_mut().zip(enc.counts) {
                        *c += n;
                    }
                    (item.key, enc.messages(topics, item.reply.as_ref()))
                }
            };
            let mut o = Pending {
                epoch: item.epoch,
                offset: item.offset,
                key,
                msgs,
                futs: Vec::new(),
                not_produced: None,
                dead: item.dead,
                refusals: 0,
            };
            o.produce(sh).await;
            outs.push(o);
        }
        count_shares(&sh.metrics, &counts);
        count_batch(&sh.metrics, shares);
        // Everything is with the producer: the backend may take the next batch.
        drop(permit);
        let sh = sh.clone();
        self.acks.spawn(async move {
            let done = acknowledge(&sh, outs).await;
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

/// Waits for the deliveries of a batch's outputs and produces the failed ones again, all
/// together every 500 ms, until every one is acknowledged; returns the share messages whose
/// outputs all were. Stops early only if shutdown ran out of time (what is not acknowledged
/// then is validated again after the restart). A dead letter the broker refuses for good
/// goes as a reference, or not at all ([`Pending::refused`]); a verdict message is retried
/// for as long as it takes (its partition is reported stalled meanwhile, with the error).
async fn acknowledge(sh: &Shared, mut outs: Vec<Pending>) -> Vec<(Epoch, i64)> {
    let mut done = Vec::with_capacity(outs.len());
    for round in 0u64.. {
        let mut failed: Vec<Pending> = Vec::new();
        let mut first_error = None;
        for mut o in outs {
            let e = match o.acknowledged().await {
                Ok(()) => {
                    done.push((o.epoch, o.offset));
                    continue;
                }
                Err(e) => e,
            };
            let why = e.to_string();
            sh.ownership.note_error(o.epoch.partition, why.clone());
            if o.dead.is_some() && refused(&e) && !o.refused(&why, sh) {
                done.push((o.epoch, o.offset));
                continue;
            }
            first_error.get_or_insert(why);
            failed.push(o);
        }
        if failed.is_empty() || sh.abort.load(Ordering::Relaxed) {
            return done;
        }
        // One line when a batch's deliveries first fail, then one every 30 s.
        if round % 60 == 0 {
            tracing::warn!(
                "{} messages not delivered ({}); producing them again every 0.5 s",
                failed.len(),
                first_error.unwrap_or_default()
            );
        }
        sh.metrics.delivery_retries.inc_by(failed.len() as u64);
        tokio::time::sleep(Duration::from_millis(500)).await;
        for o in &mut failed {
            o.produce(sh).await;
        }
        outs = failed;
    }
    done
}
