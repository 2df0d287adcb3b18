//! Dead letters: share and job messages the node cannot use, copied to the dead-letter topic
//! with their source and the reason in headers. One form for every path (share messages in
//! either delivery mode, job messages): the message byte for byte when it fits what the
//! producer and the broker take, else cut to fit, and if the broker still refuses it, a
//! reference to it without payload. The partition moves on in every case: a message that
//! can never be produced must not hold its offset, and with it the partition, for ever.

use super::produce_blocking;
use crate::config::KafkaConfig;
use crate::kafka::{H_ERROR, H_ORIGINAL_KEY_SIZE, H_ORIGINAL_SIZE, H_PAYLOAD_DROPPED};
use crate::metrics::Metrics;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

/// librdkafka's default `message.max.bytes`: the most it takes of key, payload and headers.
const LIBRDKAFKA_MESSAGE_MAX: usize = 1_000_000;
/// The broker's default `max.message.bytes` of a topic (a record batch, with its overhead).
const BROKER_MESSAGE_MAX: usize = 1_048_588;
/// Keys longer than this are cut: the dead-letter topic is not partitioned by them, and a
/// key as long as a message would leave no room for the payload.
const MAX_KEY: usize = 1024;
/// Room left for the record's own framing beside key, payload and headers.
const FRAMING: usize = 512;

/// A message the node cannot use, in the form it goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

/// The most a dead letter may hold (key, payload and headers): the producer's
/// `message.max.bytes` when `[kafka.producer]` sets it, else librdkafka's default, and never
/// more than a topic with the broker's default limit takes.
pub fn size_limit(k: &KafkaConfig) -> usize {
    let producer = k
        .producer
        .get("message.max.bytes")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(LIBRDKAFKA_MESSAGE_MAX);
    producer.min(BROKER_MESSAGE_MAX)
}

impl DeadLetter {
    /// The dead letter of `m`, unusable because of `error`, within `limit` bytes.
    pub fn of(m: &BorrowedMessage<'_>, error: &str, limit: usize) -> DeadLetter {
        DeadLetter::new(
            (m.topic(), m.partition(), m.offset()),
            m.key(),
            m.payload().unwrap_or(&[]),
            error,
            limit,
        )
    }

    /// The dead letter of the message at `source` (topic, partition, offset) with `key` and
    /// `payload`: byte for byte when it fits `limit`, else key and payload cut to fit, with
    /// their original sizes in headers.
    pub fn new(
        source: (&str, i32, i64),
        key: Option<&[u8]>,
        payload: &[u8],
        error: &str,
        limit: usize,
    ) -> DeadLetter {
        let (topic, partition, offset) = source;
        let mut headers = vec![
            (crate::kafka::H_SOURCE_TOPIC, topic.to_string()),
            (crate::kafka::H_SOURCE_PARTITION, partition.to_string()),
            (crate::kafka::H_SOURCE_OFFSET, offset.to_string()),
            (H_ERROR, error.to_string()),
            (H_ORIGINAL_SIZE, payload.len().to_string()),
        ];
        let key = key.map(|k| {
            if k.len() > MAX_KEY {
                headers.push((H_ORIGINAL_KEY_SIZE, k.len().to_string()));
            }
            k[..k.len().min(MAX_KEY)].to_vec()
        });
        let used = key.as_ref().map_or(0, Vec::len) + headers_size(&headers) + FRAMING;
        let room = limit.saturating_sub(used);
        DeadLetter {
            key,
            payload: payload[..payload.len().min(room)].to_vec(),
            headers,
        }
    }

    /// Its headers for the producer.
    pub fn headers(&self) -> OwnedHeaders {
        let mut h = OwnedHeaders::new_with_capacity(self.headers.len());
        for (key, value) in &self.headers {
            h = h.insert(Header {
                key,
                value: Some(value.as_str()),
            });
        }
        h
    }

    /// Whether the payload is shorter than the message's.
    pub fn is_cut(&self) -> bool {
        self.headers
            .iter()
            .any(|(k, v)| *k == H_ORIGINAL_SIZE && *v != self.payload.len().to_string())
    }

    /// The reference form, for when the broker refused this one (`why`): the same headers,
    /// no payload.
    pub fn reference(&self, why: &str) -> DeadLetter {
        let mut headers = self.headers.clone();
        headers.push((H_PAYLOAD_DROPPED, why.to_string()));
        DeadLetter {
            key: self.key.clone(),
            payload: Vec::new(),
            headers,
        }
    }
}

/// Bytes the headers take in a record (names, values and their length prefixes).
fn headers_size(h: &[(&str, String)]) -> usize {
    h.iter().map(|(k, v)| k.len() + v.len() + 10).sum()
}

/// Whether a delivery error means the broker (or librdkafka) will never take this message
/// as it is: producing it again cannot help.
pub fn refused(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::MessageBatchTooLarge
                | C::InvalidMessage
                | C::InvalidRecord
                | C::PolicyViolation
        )
    )
}

/// Where the jobs reader puts job messages it cannot use.
pub struct JobDeadLetters {
    pub producer: FutureProducer,
    pub topic: String,
    pub limit: usize,
    pub runtime: tokio::runtime::Handle,
}

impl JobDeadLetters {
    /// Produces the message's dead letter and logs a failed delivery; a dead letter the
    /// broker refuses is sent again as a reference. The jobs reader does not wait: it has no
    /// offsets to store, and every node reads the whole jobs topic, so each node puts its
    /// own copy there (readers drop repeats by source topic, partition and offset).
    pub fn send(&self, m: &BorrowedMessage<'_>, error: &str, metrics: &Metrics) {
        metrics.dead_letters.inc();
        let dl = DeadLetter::of(m, error, self.limit);
        if dl.is_cut() {
            metrics.dead_letters_cut.inc();
        }
        let (p, o) = (m.partition(), m.offset());
        let (producer, topic) = (self.producer.clone(), self.topic.clone());
        self.runtime.spawn(async move {
            let mut dl = dl;
            for attempt in 0..2 {
                let r = match produce_blocking(
                    &producer,
                    (&topic, None),
                    dl.key.as_deref(),
                    &dl.payload,
                    dl.headers(),
                ) {
                    Ok(f) => match f.await {
                        Ok(Ok(_)) => return,
                        Ok(Err((e, _))) => e,
                        Err(_) => KafkaError::Canceled,
                    },
                    Err(e) => e,
                };
                if attempt == 0 && refused(&r) {
                    dl = dl.reference(&r.to_string());
                    continue;
                }
                tracing::warn!(
                    partition = p,
                    offset = o,
                    "bad job message not delivered to the dead-letter topic: {r}"
                );
                return;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(d: &'a DeadLetter, name: &str) -> Option<&'a str> {
        d.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A message that fits goes byte for byte; a longer one is cut to the limit with its
    /// size in a header, and so is a key longer than 1 KiB; the reference form keeps the
    /// headers and drops the payload.
    #[test]
    fn dead_letters_fit_the_limit() {
        let small = DeadLetter::new(("t", 1, 7), Some(b"k"), &[5; 100], "bad", 10_000);
        assert_eq!(small.payload, vec![5; 100]);
        assert!(!small.is_cut());
        assert_eq!(header(&small, H_ORIGINAL_SIZE), Some("100"));
        assert_eq!(header(&small, crate::kafka::H_SOURCE_OFFSET), Some("7"));

        let big = vec![9u8; 2_000_000];
        let long_key = vec![1u8; 5000];
        let cut = DeadLetter::new(("t", 0, 1), Some(&long_key), &big, "too big", 1_000_000);
        let total =
            cut.payload.len() + cut.key.as_ref().unwrap().len() + headers_size(&cut.headers);
        assert!(total < 1_000_000 && cut.payload.len() > 990_000, "{total}");
        assert!(cut.is_cut());
        assert_eq!(header(&cut, H_ORIGINAL_SIZE), Some("2000000"));
        assert_eq!(cut.key.as_ref().unwrap().len(), MAX_KEY);
        assert_eq!(header(&cut, H_ORIGINAL_KEY_SIZE), Some("5000"));

        let r = cut.reference("Broker: Message size too large");
        assert!(r.payload.is_empty());
        assert_eq!(header(&r, H_ORIGINAL_SIZE), Some("2000000"));
        assert_eq!(
            header(&r, H_PAYLOAD_DROPPED),
            Some("Broker: Message size too large")
        );
    }

    #[test]
    fn the_limit_follows_the_producer_and_the_broker_default() {
        let mut k = KafkaConfig::default();
        assert_eq!(size_limit(&k), 1_000_000);
        k.producer
            .insert("message.max.bytes".into(), "200000".into());
        assert_eq!(size_limit(&k), 200_000);
        k.producer
            .insert("message.max.bytes".into(), "50000000".into());
        assert_eq!(size_limit(&k), BROKER_MESSAGE_MAX);
    }

    #[test]
    fn size_errors_are_refusals_and_a_broker_away_is_not() {
        use rdkafka::types::RDKafkaErrorCode as C;
        assert!(refused(&KafkaError::MessageProduction(
            C::MessageSizeTooLarge
        )));
        assert!(refused(&KafkaError::MessageProduction(C::InvalidRecord)));
        assert!(!refused(&KafkaError::MessageProduction(C::MessageTimedOut)));
        assert!(!refused(&KafkaError::MessageProduction(
            C::BrokerTransportFailure
        )));
    }
}
