//! One broker connection: connect (TLS, credentials, persistent session), subscribe at QoS 1, turn messages into
//! batches for the pipeline and acknowledge each message only after its batch has committed.
//!
//! Two tasks, so the event loop is never blocked by the ledger and acks cannot deadlock:
//! - the **poll task** owns the rumqttc `EventLoop`: it reconnects with the application's backoff (rumqttc retries
//!   on the next `poll()` with no delay), subscribes on `ConnAck` when the broker kept no session, and forwards
//!   publishes over a bounded channel. It never publishes or acks.
//! - the **worker** decodes, enqueues to the pipeline and, in arrival order, acks each message once its completion
//!   resolves Ok. A failed commit is retried, never acked; after a disconnect, messages from the old connection are
//!   not acked (their packet ids may name other messages in the next session; the broker redelivers them).
//!   rumqttc also drops acks still queued at a disconnect (rumqtt PR #859).
//!
//! The worker never waits on rumqttc's request channel (`try_ack`): only the poll task drains it, and a worker
//! blocked there while the poll task waits for the worker would deadlock. Acks wait in the worker's own queue and
//! go to rumqttc a window at a time (see [`super::acks`]); the broker redelivers a committed message whose ack never
//! went out (shutdown, disconnect).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::FixedOffset;
use rumqttc::{
    AsyncClient, ConnAck, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS,
    SubscribeFilter, SubscribeReasonCode,
};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::acks::{self, AckGauge, Acks};
use super::payload::{self, Context, PayloadError};
use super::topic::TopicRouter;
use crate::config::mqtt::{Broker, MAX_PACKET_BYTES};
use crate::config::Config;
use crate::health::{Backoff, ConnectionState, Health};
use crate::model::{Parameter, Quarantined, SourceKind, StationId, Timestamp, Unit};
use crate::mqtt::{describe_error, MqttError, Reconnect, Session};
use crate::pipeline::{Batch, Completion, Evidence, Ingest, PipelineError};

/// Most messages the worker holds between enqueue and ack.
const MAX_IN_FLIGHT: usize = 4096;
/// Messages waiting between the poll task and the worker.
const FORWARD_CAPACITY: usize = 256;
/// rumqttc request channel: the ack window and room for (un)subscribe and disconnect requests beside it.
const REQUEST_CAPACITY: usize = 2 * acks::WINDOW as usize;
/// How long a stopping worker waits for its last acks to go out.
const FINAL_ACKS: Duration = Duration::from_secs(5);
/// Most messages coalesced into one pipeline batch.
const BATCH_MESSAGES: usize = 256;
/// Bytes of an oversized payload kept in quarantine.
const KEEP_OVERSIZED: usize = 64 * 1024;

/// Everything one broker connection needs, resolved from the config.
#[derive(Clone, Debug)]
pub struct Subscriber {
    pub broker: Broker,
    pub router: TopicRouter,
    /// Filters the previous configuration subscribed to and this one does not (after a reload): unsubscribed once
    /// connected, since the broker's persistent session would otherwise keep delivering them.
    pub stale_filters: Vec<String>,
    units: Arc<FxHashMap<StationId, FxHashMap<Parameter, Unit>>>,
    tz: FixedOffset,
}

impl Subscriber {
    pub fn new(config: &Config, broker: &Broker) -> Self {
        let station_topics: Vec<(StationId, String)> = config
            .stations
            .iter()
            .filter_map(|s| {
                s.mqtt
                    .as_ref()
                    .filter(|m| m.broker == broker.name)
                    .map(|m| (s.id.clone(), m.topic.clone()))
            })
            .collect();
        let known: Vec<StationId> = config.stations.iter().map(|s| s.id.clone()).collect();
        let units = config
            .stations
            .iter()
            .map(|s| {
                let u = s
                    .parameters
                    .iter()
                    .map(|p| (p.parameter.clone(), p.unit.clone()))
                    .collect();
                (s.id.clone(), u)
            })
            .collect();
        Subscriber {
            broker: broker.clone(),
            router: TopicRouter::new(&broker.topics, &station_topics, &known),
            stale_filters: Vec::new(),
            units: Arc::new(units),
            tz: config.timezone,
        }
    }

    /// The `Health` key of this connection.
    pub fn health_key(&self) -> String {
        format!("mqtt {}", self.broker.name)
    }

    /// Turn received messages into one batch: readings, and quarantine entries for what could not be read.
    pub fn batch<'a>(&self, messages: impl IntoIterator<Item = &'a Publish>) -> Batch {
        let mut batch = Batch::new(SourceKind::Mqtt);
        for m in messages {
            self.decode_into(m, &mut batch);
        }
        batch
    }

    fn decode_into(&self, m: &Publish, batch: &mut Batch) {
        // Built only for what goes to quarantine.
        let quarantine = |reason: String, raw: &[u8], station: Option<&StationId>| {
            let q = Quarantined::new(
                SourceKind::Mqtt,
                self.origin(&m.topic),
                reason,
                raw.to_vec(),
            );
            match station {
                Some(s) => q.with_station(s.as_str()),
                None => q,
            }
        };
        let station = match self.router.station(&m.topic) {
            Ok(s) => s,
            Err(e) => {
                batch
                    .quarantined
                    .push(quarantine(e.to_string(), &m.payload, None));
                return;
            }
        };
        if m.payload.len() > self.broker.max_payload_bytes {
            let kept = KEEP_OVERSIZED.min(m.payload.len());
            let e = PayloadError::TooLarge {
                size: m.payload.len(),
                limit: self.broker.max_payload_bytes,
                kept,
            };
            batch.quarantined.push(quarantine(
                e.to_string(),
                &m.payload[..kept],
                Some(&station),
            ));
            return;
        }
        let units = self.units.get(&station);
        let unit_of = |p: &Parameter| {
            units
                .and_then(|u| u.get(p).cloned())
                .or_else(|| p.standard_unit().map(Unit::new))
                .unwrap_or_else(|| Unit::new(""))
        };
        let cx = Context {
            station: &station,
            tz: self.tz,
            unit_of: &unit_of,
            configured: units,
        };
        let decoded = payload::decode(self.broker.format, &self.broker.json, &m.payload, &cx);
        let from = batch.readings.len();
        batch.readings.extend(decoded.readings);
        // Kept for the readings the processor may refuse (range, clock): their quarantine row quotes the message.
        batch.read_from(
            from,
            Evidence {
                origin: self.origin(&m.topic),
                raw: m.payload.to_vec(),
                received: Timestamp::now(),
            },
        );
        // A refused part keeps the whole message too (its timestamp, the other values); the reason names the part.
        batch.quarantined.extend(
            decoded
                .rejected
                .into_iter()
                .map(|r| quarantine(r.error.to_string(), &m.payload, Some(&station))),
        );
    }

    /// Where a message came from, as quarantine rows name it.
    fn origin(&self, topic: &str) -> String {
        format!("mqtt://{}/{}", self.broker.name, topic)
    }

    /// rumqttc options: the broker's (see [`crate::mqtt::Client`]) with a persistent session and manual acks.
    pub fn options(&self) -> Result<MqttOptions, MqttError> {
        let client = crate::mqtt::Client {
            broker: &self.broker,
            client_id: &self.broker.client_id,
            session: Session::Persistent,
            inflight: None,
        };
        let mut o = client.options()?;
        o.set_manual_acks(true)
            .set_max_packet_size(MAX_PACKET_BYTES, 1024 * 1024)
            .set_request_channel_capacity(REQUEST_CAPACITY);
        Ok(o)
    }
}

/// A message on its way from the poll task to the worker, tagged with the connection it arrived on.
struct Delivery {
    publish: Publish,
    connection: u64,
}

/// Run one broker connection until `shutdown`; then commit and ack what was received, and disconnect.
pub async fn run(sub: Subscriber, ingest: Ingest, health: Health, shutdown: CancellationToken) {
    let key = sub.health_key();
    let stations = sub.units.keys().map(|s| s.as_str().to_string()).collect();
    health.register(&key, ConnectionState::new(SourceKind::Mqtt, stations));
    let mut reconnect = Reconnect::new(Duration::from_secs(30));
    let options = loop {
        match sub.options() {
            Ok(o) => break o,
            Err(e) => {
                error!(broker = %sub.broker.name, error = %e, "MQTT connection cannot be set up; retrying.");
                health.failure(&key, e.to_string());
                if sleep_or_shutdown(reconnect.failed(), &shutdown).await {
                    return;
                }
            }
        }
    };
    let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
    let (tx, rx) = mpsc::channel(FORWARD_CAPACITY);
    let connection = Arc::new(AtomicU64::new(0));
    let worker_done = CancellationToken::new();
    let gauge = Arc::new(AckGauge::default());
    let worker = tokio::spawn(work(
        sub.clone(),
        rx,
        client.clone(),
        connection.clone(),
        Acks::new(gauge.clone()),
        ingest,
        health.clone(),
        worker_done.clone(),
        shutdown.clone(),
    ));
    poll(
        &sub,
        eventloop,
        &client,
        tx,
        &connection,
        &gauge,
        &health,
        reconnect,
        &shutdown,
        &worker_done,
    )
    .await;
    let _ = worker.await;
    info!(broker = %sub.broker.name, "MQTT source stopped.");
}

async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// The poll task. After `shutdown` it stops forwarding, keeps polling so the worker's last acks go out, then
/// disconnects.
#[allow(clippy::too_many_arguments)]
async fn poll(
    sub: &Subscriber,
    mut eventloop: EventLoop,
    client: &AsyncClient,
    tx: mpsc::Sender<Delivery>,
    connection: &AtomicU64,
    acks_sent: &AckGauge,
    health: &Health,
    mut reconnect: Reconnect,
    shutdown: &CancellationToken,
    worker_done: &CancellationToken,
) {
    let key = sub.health_key();
    let name = sub.broker.name.as_str();
    let filters = sub.router.filters(sub.broker.share_group.as_deref());
    let mut tx = Some(tx);
    let mut subscribed_once = false;
    // Connection failures since the last success (logging policy).
    let mut failures_in_a_row: u32 = 0;
    let mut unsubscribed_stale = false;
    loop {
        let event = tokio::select! {
            biased;
            _ = shutdown.cancelled(), if tx.is_some() => {
                // Closing the channel lets the worker finish what it holds.
                tx = None;
                continue;
            }
            _ = worker_done.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ConnAck {
                session_present, ..
            }))) => {
                let n = connection.fetch_add(1, Ordering::SeqCst) + 1;
                reconnect.connected();
                health.success(&key, 0);
                info!(broker = %name, session_present, connection = n, failed_attempts = failures_in_a_row, "MQTT connected.");
                failures_in_a_row = 0;
                // Subscribe when the broker kept no session, and once per process so topic changes take effect.
                if !session_present || !subscribed_once {
                    let request = filters
                        .iter()
                        .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                    match client.try_subscribe_many(request) {
                        Ok(()) => subscribed_once = true,
                        Err(e) => {
                            warn!(broker = %name, error = %e, "MQTT subscribe request failed.")
                        }
                    }
                }
                if !unsubscribed_stale {
                    unsubscribed_stale = true;
                    for f in &sub.stale_filters {
                        match client.try_unsubscribe(f.clone()) {
                            Ok(()) => {
                                info!(broker = %name, filter = %f, "MQTT unsubscribed from a filter the new configuration dropped.")
                            }
                            Err(e) => {
                                warn!(broker = %name, filter = %f, error = %e, "MQTT unsubscribe request failed; the broker's session keeps the old subscription.")
                            }
                        }
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    error!(broker = %name, filters = ?filters, "The broker refused a subscription; no data will arrive on it. Check the broker's ACL.");
                    health.failure(&key, "subscription refused by the broker");
                } else {
                    debug!(broker = %name, filters = ?filters, "MQTT subscribed.");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let Some(sender) = &tx else {
                    // Shutting down: not acked, so the broker delivers it again next time.
                    continue;
                };
                let d = Delivery {
                    publish,
                    connection: connection.load(Ordering::SeqCst),
                };
                // Blocks while the worker is full: backpressure reaches the broker through unacked messages.
                if sender.send(d).await.is_err() {
                    break;
                }
            }
            Ok(Event::Outgoing(Outgoing::PubAck(_) | Outgoing::PubRec(_))) => acks_sent.sent(),
            Ok(_) => {}
            Err(e) => {
                // rumqttc has dropped the acks still queued (they would reach the next session); acks the worker
                // makes from now on for this connection's messages are skipped too. The broker redelivers them.
                connection.fetch_add(1, Ordering::SeqCst);
                acks_sent.dropped();
                if tx.is_none() {
                    // Shutting down and the connection is gone: nothing left to flush.
                    break;
                }
                let delay = reconnect.failed();
                let error = describe_error(&e);
                // One policy for every connection: the first failure at WARN, repeats quietly (a reminder every
                // 30th), the recovery at INFO ("MQTT connected." with the failed attempts).
                if failures_in_a_row.is_multiple_of(30) {
                    warn!(broker = %name, host = %sub.broker.host, port = sub.broker.port, error = %error, retry_in = ?delay, failed_attempts = failures_in_a_row + 1, "MQTT connection failed, reconnecting.");
                } else {
                    debug!(broker = %name, error = %error, retry_in = ?delay, failed_attempts = failures_in_a_row + 1, "MQTT broker still unreachable.");
                }
                failures_in_a_row += 1;
                health.failure(&key, error);
                health.reconnecting(&key);
                if sleep_or_shutdown(delay, shutdown).await {
                    tx = None;
                }
            }
        }
    }
    // The worker's acks sit in the request channel ahead of this; rumqttc sends requests in order.
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    acks_sent.close();
}

/// Messages of one pipeline batch, waiting for its commit.
struct InFlight {
    messages: Vec<Delivery>,
    readings: u64,
    completion: Completion,
}

/// The worker: decode, enqueue, and ack in arrival order once committed.
#[allow(clippy::too_many_arguments)]
async fn work(
    sub: Subscriber,
    mut rx: mpsc::Receiver<Delivery>,
    client: AsyncClient,
    connection: Arc<AtomicU64>,
    mut acks: Acks,
    ingest: Ingest,
    health: Health,
    done: CancellationToken,
    shutdown: CancellationToken,
) {
    let _done = done.drop_guard();
    let key = sub.health_key();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut held = 0usize;
    let mut open = true;
    let mut retry = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        if !open && in_flight.is_empty() {
            acks.finish(&client, &connection, &sub.broker.name, FINAL_ACKS)
                .await;
            return;
        }
        let room = open && held < MAX_IN_FLIGHT;
        tokio::select! {
            biased;
            result = async {
                match in_flight.front_mut() {
                    Some(f) => Some((&mut f.completion).await),
                    None => None,
                }
            }, if !in_flight.is_empty() => {
                let Some(head) = in_flight.pop_front() else { continue };
                match result {
                    Some(Ok(_report)) => {
                        retry.reset();
                        held -= head.messages.len();
                        acks.push(head.messages.iter().map(|d| (d.connection, d.publish.pkid, d.publish.qos)));
                        acks.flush(&client, &connection, &sub.broker.name);
                        health.success(&key, head.readings);
                    }
                    Some(Err(PipelineError::Closed)) | None => {
                        warn!(broker = %sub.broker.name, messages = head.messages.len(), "Pipeline closed; messages left unacked for redelivery.");
                        return;
                    }
                    Some(Err(e @ PipelineError::Ledger(_))) => {
                        // Not stored: not acked. Submit again after a pause; later batches wait behind it so acks
                        // stay in arrival order.
                        let delay = retry.next_delay();
                        error!(broker = %sub.broker.name, error = %e, retry_in = ?delay, "MQTT batch not committed; retrying, not acked.");
                        health.failure(&key, e.to_string());
                        // At shutdown a ledger that keeps failing must not hold the daemon: leave the messages
                        // unacked; the broker redelivers them to the next run.
                        if sleep_or_shutdown(delay, &shutdown).await {
                            warn!(broker = %sub.broker.name, messages = head.messages.len(), "Stopping with uncommitted messages; left unacked for redelivery.");
                            return;
                        }
                        match ingest.enqueue(sub.batch(head.messages.iter().map(|d| &d.publish))).await {
                            Ok(completion) => in_flight.push_front(InFlight { completion, ..head }),
                            Err(_) => return,
                        }
                    }
                }
            }
            first = rx.recv(), if room => {
                let Some(first) = first else {
                    open = false;
                    continue;
                };
                let mut messages = vec![first];
                while messages.len() < BATCH_MESSAGES && held + messages.len() < MAX_IN_FLIGHT {
                    match rx.try_recv() {
                        Ok(d) => messages.push(d),
                        Err(_) => break,
                    }
                }
                let batch = sub.batch(messages.iter().map(|d| &d.publish));
                let readings = batch.readings.len() as u64;
                held += messages.len();
                match ingest.enqueue(batch).await {
                    Ok(completion) => in_flight.push_back(InFlight { messages, readings, completion }),
                    Err(_) => {
                        warn!(broker = %sub.broker.name, "Pipeline closed; messages left unacked for redelivery.");
                        return;
                    }
                }
            }
            _ = acks.room(), if !acks.is_empty() => acks.flush(&client, &connection, &sub.broker.name),
        }
    }
}
