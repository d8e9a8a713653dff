//! MQTT payload formats, as pure functions: bytes in, readings and rejected parts out. No I/O, no clock.
//!
//! One file per format, each a [`Format`]: [`json`] (one object per message, read through the broker's
//! [`JsonMappingSection`]) and [`tt10`] (Circular 10/2021 file content). `[[mqtt.broker]] format = "…"` names one;
//! [`PayloadFormat`] dispatches to it.
//!
//! A message may carry many readings. A part that cannot become a reading is returned as a [`Rejected`] with its
//! own bytes and reason while the good parts are kept; a message that cannot be read at all is one `Rejected` with
//! the whole payload. The encoders are the inverse (used by the simulator, the benchmark and round-trip tests).
//!
//! Adding a format: a new file here with a unit struct implementing [`Format`], and one line in the
//! `payload_formats!` list below (its `format` name, module and struct). The enum, its names in config errors and
//! the dispatch come from that list.

use chrono::FixedOffset;

use crate::circular10::Tt10Error;
pub use crate::circular10::{format_tt10_time, tt10_time};
use crate::model::{ModelError, Parameter, Reading, StationId, Unit};

mod json_tree;

pub use json::{decode_json, encode_json, JsonMappingSection, TimestampFormat};
pub use tt10::{decode_tt10, encode_tt10};

/// What each payload format provides.
pub trait Format {
    /// Readings and rejected parts of one message. `mapping` is the broker's JSON mapping; formats that carry
    /// their own names ignore it.
    fn decode(mapping: &JsonMappingSection, payload: &[u8], cx: &Context<'_>) -> Decoded;
}

/// The formats: `"name" => module::Struct`. Generates `pub mod module;`, the [`PayloadFormat`] variant and its
/// dispatch.
macro_rules! payload_formats {
    ($($name:literal => $module:ident :: $variant:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// A broker's payload format (`format = "…"`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum PayloadFormat {
            $($variant,)+
        }

        impl PayloadFormat {
            pub const ALL: &'static [PayloadFormat] = &[$(PayloadFormat::$variant),+];

            /// The name written in the config.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(PayloadFormat::$variant => $name,)+
                }
            }

            /// Decode one message in this format.
            pub fn decode(
                self,
                mapping: &JsonMappingSection,
                payload: &[u8],
                cx: &Context<'_>,
            ) -> Decoded {
                match self {
                    $(PayloadFormat::$variant => <$module::$variant as Format>::decode(mapping, payload, cx),)+
                }
            }
        }
    };
}

payload_formats! {
    "json" => json::Json,
    "tt10" => tt10::Tt10,
}

impl PayloadFormat {
    pub fn parse(name: &str) -> Option<PayloadFormat> {
        Self::ALL.iter().copied().find(|f| f.as_str() == name)
    }

    /// `json, tt10` (for config errors).
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a payload, or a part of it, is not a reading. Messages name the part and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is not valid UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    #[error("payload is empty")]
    Empty,
    #[error("payload of {size} bytes exceeds the {limit}-byte limit (max_payload_bytes); the first {kept} bytes are kept")]
    TooLarge {
        size: usize,
        limit: usize,
        kept: usize,
    },
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("JSON payload is {0}; expected an object")]
    NotObject(&'static str),
    #[error("no timestamp at {0:?} (json.timestamp)")]
    MissingTimestamp(String),
    #[error("timestamp {value} is not {expected}")]
    Timestamp {
        value: String,
        expected: &'static str,
    },
    #[error("status {0} is not a device status; expected 00, 01, 02, 03 or measuring, calibrating, fault, maintenance")]
    Status(String),
    #[error("no values object at {0:?} (json.values)")]
    MissingValues(String),
    #[error("{0:?} is not an object of parameters (json.values)")]
    ValuesNotObject(String),
    #[error("the payload carries no values")]
    NoValues,
    #[error("parameter {parameter}: value {found} is not a number")]
    Value { parameter: String, found: String },
    #[error("parameter {parameter}: no value at {key:?} (json.value_key)")]
    MissingValue { parameter: String, key: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tt10(#[from] Tt10Error),
}

/// A part of a payload that could not become a reading: its bytes and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub error: PayloadError,
    pub raw: Vec<u8>,
}

/// What a payload decoded to: the good readings and the rejected parts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    pub readings: Vec<Reading>,
    pub rejected: Vec<Rejected>,
}

impl Decoded {
    fn whole(error: PayloadError, payload: &[u8]) -> Self {
        Decoded {
            readings: Vec::new(),
            rejected: vec![Rejected {
                error,
                raw: payload.to_vec(),
            }],
        }
    }
}

/// What the parser needs to know besides the bytes.
pub struct Context<'a> {
    pub station: &'a StationId,
    /// Local time zone of TT10 timestamps.
    pub tz: FixedOffset,
    /// Unit of a parameter when the payload does not give one (the station's configured unit).
    pub unit_of: &'a dyn Fn(&Parameter) -> Unit,
    /// The station's configured parameters and units, if known: a reading of one of them shares the configured
    /// name and unit instead of allocating its own.
    pub configured: Option<&'a rustc_hash::FxHashMap<Parameter, Unit>>,
}

/// Decode one message in the broker's format.
pub fn decode(
    format: PayloadFormat,
    mapping: &JsonMappingSection,
    payload: &[u8],
    cx: &Context<'_>,
) -> Decoded {
    format.decode(mapping, payload, cx)
}

/// The payload as text (a leading BOM dropped); empty or non-UTF-8 payloads are errors.
fn utf8(payload: &[u8]) -> Result<&str, PayloadError> {
    let text = std::str::from_utf8(payload).map_err(|e| PayloadError::NotUtf8(e.valid_up_to()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(PayloadError::Empty);
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
