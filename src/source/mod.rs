//! Sources: where readings come from. Each turns its input into `Batch`es for the pipeline and acknowledges
//! upstream only after the batch's completion resolves (the commit).

pub mod jsonl;
pub mod modbus;
pub mod mqtt;
pub mod tt10;
