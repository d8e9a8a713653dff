//! Real peers for integration tests.

pub mod mosquitto;
