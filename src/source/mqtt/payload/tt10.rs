//! `format = "tt10"`: Circular 10/2021 file content (`<symbol> TAB <value> TAB <unit> TAB <yyyyMMddHHmmss> TAB
//! <status>`) in a message. The content parser and writer live in [`crate::circular10`]; this file only
//! adapts them.

use chrono::FixedOffset;

use super::{utf8, Context, Decoded, Format, JsonMappingSection, PayloadError, Rejected};
use crate::model::Reading;
use crate::circular10 as tt10;

/// The Circular 10 format.
pub struct Tt10;

impl Format for Tt10 {
    fn decode(_mapping: &JsonMappingSection, payload: &[u8], cx: &Context<'_>) -> Decoded {
        decode_tt10(payload, cx)
    }
}

/// Decode Circular 10 content (see [`crate::circular10`]): CRLF, a BOM, blank lines, trailing blanks,
/// decimal commas, several groups on one line and status `03` are accepted.
pub fn decode_tt10(payload: &[u8], cx: &Context<'_>) -> Decoded {
    let text = match utf8(payload) {
        Ok(t) => t,
        Err(e) => return Decoded::whole(e, payload),
    };
    let parsed = tt10::parse_text(text, cx.station, cx.tz, cx.unit_of);
    let out = Decoded {
        readings: parsed.readings,
        rejected: parsed
            .rejected
            .into_iter()
            .map(|r| Rejected {
                error: r.error.into(),
                raw: r.raw,
            })
            .collect(),
    };
    if out.readings.is_empty() && out.rejected.is_empty() {
        return Decoded::whole(PayloadError::NoValues, payload);
    }
    out
}

/// Encode readings as Circular 10 content, one CRLF-terminated line per reading (maintenance is written as `01`).
pub fn encode_tt10(readings: &[Reading], tz: FixedOffset) -> Vec<u8> {
    tt10::write_content(readings, tz)
}
