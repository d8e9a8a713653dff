//! `quantrac bench …`: throughput and latency measurements that print numbers (never asserted in tests).
//!
//! Benchmark code lives here only: no production module imports it. Each bench drives the public API of the modules
//! it measures, as the daemon does.
//!
//! - [`ledger`]: readings/s through processor + ledger, beside SQLite alone (the floor under the writer).
//! - [`influx`]: lines/s forwarded to an InfluxDB v2 write API, beside a bare HTTP loop.
//! - [`sse`]: SSE fan-out to dashboard clients while ingesting.
//! - [`api`]: `/api/history` (24 h and 1 year of one station) and `/api/stations` (500 stations) on a ledger of
//!   50.5 million readings (48 stations × 10 parameters × 1 year), built once and kept.
//! - [`http`]: the dashboard API under concurrent keep-alive clients, and the connection caps.
//! - [`alerts`]: latency from a reading's commit to its notification at a local webhook.
//! - [`modbus`]: polling simulated stations against a bare tokio-modbus loop; [`modbus_sim`] is the simulator child.
//! - [`mqtt`]: readings/s committed from Mosquitto beside `mosquitto_sub`.
//! - [`e2e`]: the whole daemon (`quantrac run` as a child) from Mosquitto to VictoriaMetrics: readings/s, CPU per
//!   reading by thread, RSS; [`soak`]: the same at a sustained rate for minutes, RSS over time.
//! - [`export`]: one year of data exported as CSV, JSON, TT10 and `all`: time and peak memory.
//! - [`backlog`]: re-deriving compliance events for a 6 h backlog of 1,000 series arriving newest first.
//! - [`compliance`]: evaluation cost per reading and hourly aggregation of a year (an ignored test prints them).
//! - [`tt10_send`]: Circular 10 files/s to FTP and SFTP beside bare upload loops, and the transmission delay.
//! - [`support`]: what the benches share (bench stations' config, per-thread CPU time, percentiles).

pub mod alerts;
pub mod api;
pub mod backlog;
pub mod compliance;
pub mod e2e;
pub mod export;
pub mod http;
pub mod influx;
pub mod ledger;
pub mod modbus;
pub mod modbus_sim;
pub mod mqtt;
pub mod soak;
pub mod sse;
pub mod support;
pub mod tt10_send;

pub use support::{bench_config, thread_times, ThreadTime};
