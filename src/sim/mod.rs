//! Simulated stations for the demo, training and tests: realistic values (diurnal pattern, noise, calibration
//! periods, one plant drifting over its limit) generated purely from (station, parameter, time), plus the
//! transports that carry them to quantrac.

mod clock;
pub mod direct;
// MQTT transport (issue 5).
mod generator;
pub mod mqtt;
// TT10 files into a landing folder (issue 9).
pub mod tt10;

pub use clock::LiveClock;
pub use generator::StationSim;
// Simulated Modbus stations (issue 4).
pub mod modbus;
