//! Dead letters: share and job messages the node cannot use, copied to the dead-letter topic
//! with their source and the reason in headers.

use super::at_least_once::deliver;
use super::{completed, produce, produce_blocking};
use crate::kafka::node::clients::Shared;
use crate::kafka::node::ownership::Epoch;
use crate::kafka::{source_headers, H_ERROR};
use crate::metrics::Metrics;
use rdkafka::message::{BorrowedMessage, Header, Message};
use rdkafka::producer::FutureProducer;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// An undecodable share message on its way to the dead-letter topic (at_least_once).
pub struct DeadLetter {
    pub topic: String,
    pub epoch: Epoch,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub error: String,
}

impl DeadLetter {
    /// Produces it until acknowledged, then completes its offset; `_permit` bounds the dead
    /// letters in flight.
    pub async fn deliver(self, sh: Arc<Shared>, _permit: OwnedSemaphorePermit) {
        let DeadLetter {
            topic,
            epoch,
            offset: o,
            key,
            payload,
            error,
        } = self;
        let p = epoch.partition;
        let headers = move || {
            source_headers(&topic, p, o).insert(Header {
                key: H_ERROR,
                value: Some(&error),
            })
        };
        let msgs = vec![(sh.cfg.kafka.topics.dead_letter.clone(), payload)];
        let f = produce(
            &sh.producer,
            &msgs[0].0,
            key.as_deref(),
            &msgs[0].1,
            headers(),
        )
        .await;
        let futs = f.into_iter().collect();
        if deliver(&sh, &msgs, key.as_deref(), &headers, futs).await {
            completed(&sh, &[(epoch, o)]);
        }
    }
}

/// Where the jobs reader puts job messages it cannot use.
pub struct JobDeadLetters {
    pub producer: FutureProducer,
    pub topic: String,
    pub runtime: tokio::runtime::Handle,
}

impl JobDeadLetters {
    /// Produces the message byte for byte to the dead-letter topic, with its source and the
    /// reason in headers, and logs a failed delivery. The jobs reader does not wait: it has
    /// no offsets to store, and every node reads the whole jobs topic, so each node puts its
    /// own copy there (readers drop repeats by source topic, partition and offset).
    pub fn send(&self, m: &BorrowedMessage<'_>, error: &str, metrics: &Metrics) {
        metrics.dead_letters.inc();
        let headers = source_headers(m.topic(), m.partition(), m.offset()).insert(Header {
            key: H_ERROR,
            value: Some(error),
        });
        let payload = m.payload().unwrap_or(&[]);
        match produce_blocking(&self.producer, &self.topic, m.key(), payload, headers) {
            Ok(f) => {
                let (p, o) = (m.partition(), m.offset());
                self.runtime.spawn(async move {
                    if !matches!(f.await, Ok(Ok(_))) {
                        tracing::warn!(
                            partition = p,
                            offset = o,
                            "bad job message not delivered to the dead-letter topic"
                        );
                    }
                });
            }
            Err(e) => tracing::warn!("cannot produce to {}: {e}", self.topic),
        }
    }
}
