//! Modbus source: polls stations over Modbus TCP, RTU on a serial line, or RTU framed over TCP, decodes their
//! register maps and submits the readings to the pipeline.
//!
//! - [`plan`]: which read requests fetch a register map (pure).
//! - [`decode`]: register words ↔ values, status and sample time; one poll → a batch (pure).

pub mod decode;
pub mod plan;
