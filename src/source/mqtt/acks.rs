//! Acks of committed messages on their way to rumqttc. rumqttc sends at most one request per network read of up to
//! ten packets (rumqtt issue #1025), so under a heavy stream acks pile up behind the reads. Piled up in rumqttc's
//! request channel they grew its queue, which never shrinks: 16 MiB stayed resident after a 2.5 M-reading burst.
//! Here at most [`WINDOW`] acks are in that channel; the rest wait in a queue of the worker's own (a few bytes an
//! ack), released once it empties.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Publish, QoS};
use tokio::sync::Notify;
use tracing::{debug, info};

/// Most acks in rumqttc's request channel at once.
pub(super) const WINDOW: i64 = 1024;
/// A drained queue keeps this much room; a larger one (after a burst) is released.
const KEEP: usize = 4096;

/// How many acks are in rumqttc's channel: counted in by the worker, out by the poll task as each goes out.
#[derive(Default)]
pub(super) struct AckGauge {
    queued: AtomicI64,
    room: Notify,
    /// The poll task has stopped: nothing more goes out.
    closed: AtomicBool,
}

impl AckGauge {
    /// The poll task saw an ack go out.
    pub fn sent(&self) {
        if self.queued.fetch_sub(1, Ordering::SeqCst) <= WINDOW / 2 + 1 {
            self.room.notify_one();
        }
    }

    /// The poll task has stopped (a stopping worker need not wait for room any longer).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.room.notify_one();
    }

    /// The connection dropped: rumqttc has discarded the acks it held (rumqtt PR #859).
    pub fn dropped(&self) {
        self.queued.store(0, Ordering::SeqCst);
        self.room.notify_one();
    }
}

#[derive(Clone, Copy)]
struct Ack {
    connection: u64,
    pkid: u16,
    qos: QoS,
}

/// The worker's acks, in commit order.
pub(super) struct Acks {
    waiting: VecDeque<Ack>,
    gauge: Arc<AckGauge>,
}

impl Acks {
    pub fn new(gauge: Arc<AckGauge>) -> Acks {
        Acks {
            waiting: VecDeque::new(),
            gauge,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Queue the acks of committed messages (QoS 0 needs none).
    pub fn push(&mut self, messages: impl IntoIterator<Item = (u64, u16, QoS)>) {
        self.waiting.extend(
            messages
                .into_iter()
                .filter(|(_, _, qos)| *qos != QoS::AtMostOnce)
                .map(|(connection, pkid, qos)| Ack {
                    connection,
                    pkid,
                    qos,
                }),
        );
    }

    /// Hand rumqttc what its window takes. Acks of an earlier connection are dropped: their packet ids may name
    /// other messages now, and the broker redelivers those messages (that copy is acked).
    pub fn flush(&mut self, client: &AsyncClient, connection: &AtomicU64, broker: &str) {
        let current = connection.load(Ordering::SeqCst);
        while let Some(a) = self.waiting.front().copied() {
            if a.connection != current {
                debug!(broker, pkid = a.pkid, "Committed message from an earlier connection; the broker redelivers it and that copy is acked.");
                self.waiting.pop_front();
                continue;
            }
            if self.gauge.queued.load(Ordering::SeqCst) >= WINDOW {
                break;
            }
            let mut publish = Publish::new("", a.qos, Vec::new());
            publish.pkid = a.pkid;
            if client.try_ack(&publish).is_err() {
                break; // the event loop is gone (shutting down): the broker redelivers
            }
            self.gauge.queued.fetch_add(1, Ordering::SeqCst);
            self.waiting.pop_front();
        }
        if self.waiting.is_empty() && self.waiting.capacity() > KEEP {
            self.waiting = VecDeque::new();
        }
    }

    /// Wait until the window has room again.
    pub async fn room(&self) {
        self.gauge.room.notified().await
    }

    /// At the worker's end: hand over what is left while the poll task still sends, for at most `limit`.
    pub async fn finish(
        &mut self,
        client: &AsyncClient,
        connection: &AtomicU64,
        broker: &str,
        limit: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.flush(client, connection, broker);
            if self.is_empty()
                || self.gauge.closed.load(Ordering::SeqCst)
                || tokio::time::timeout_at(deadline, self.room())
                    .await
                    .is_err()
            {
                break;
            }
        }
        if !self.is_empty() {
            info!(broker, acks = self.waiting.len(), "Stopping before every ack went out; the broker redelivers those (already committed) messages.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Acks past the window wait in the worker's queue, go out as the poll task reports acks sent, and a drained
    /// queue gives its room back.
    #[tokio::test]
    async fn acks_wait_past_the_window_and_the_queue_is_released_when_drained() {
        let (client, eventloop) =
            AsyncClient::new(rumqttc::MqttOptions::new("t", "127.0.0.1", 1), 1 << 16);
        let gauge = Arc::new(AckGauge::default());
        let mut acks = Acks::new(gauge.clone());
        let connection = AtomicU64::new(1);
        let n = 5 * WINDOW as u16;
        acks.push((0..n).map(|pkid| (1, pkid, QoS::AtLeastOnce)));
        acks.push([(1, 9, QoS::AtMostOnce), (0, 7, QoS::AtLeastOnce)]);
        acks.flush(&client, &connection, "b");
        assert_eq!(gauge.queued.load(Ordering::SeqCst), WINDOW);
        assert_eq!(acks.waiting.len(), 4 * WINDOW as usize + 1);
        assert!(acks.waiting.capacity() > KEEP);
        let mut rounds = 1;
        while !acks.is_empty() {
            for _ in 0..WINDOW {
                gauge.sent();
            }
            tokio::time::timeout(Duration::from_secs(5), acks.room())
                .await
                .expect("room announced");
            acks.flush(&client, &connection, "b");
            rounds += 1;
        }
        // Every QoS 1 ack of this connection went out once, a window at a time; the old connection's and the QoS 0
        // one did not; the drained queue gave its room back.
        assert_eq!(rounds, 5);
        assert_eq!(gauge.queued.load(Ordering::SeqCst), WINDOW);
        assert_eq!(acks.waiting.capacity(), 0);
        drop(eventloop);
    }
}
