//! Forwarders: send committed data from the ledger to InfluxDB. Each keeps its own cursors in the ledger and
//! moves them only after a successful write, so an outage or a restart only delays data.

pub mod encode;
pub mod influx;
pub mod line_protocol;
