//! Register words ↔ numbers: byte/word order, data types, scale and offset, device status and sample time, and
//! turning one poll's words into a [`Batch`]. Pure code: no I/O, no clock (the poll time is passed in).
//!
//! Order letters name the bytes of a big-endian value `A B C D` as they arrive in the registers, generalised to
//! any width: `ABCD` words and bytes in order (big-endian); `CDAB` words in reverse order (the low word first);
//! `BADC` bytes swapped inside each word; `DCBA` both (little-endian). For a one-register type only the byte swap
//! applies.

use crate::config::modbus::{
    DataType, Modbus, Register, RegisterKind, StatusRegister, TimestampRegister, WordOrder,
};
use crate::model::{Quarantined, Reading, SourceKind, StationId, Status, Timestamp, Unit};
use crate::pipeline::{Batch, Evidence};

/// A value that could not be decoded from its registers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("{data_type} needs {expected} registers but {got} arrived")]
    Length {
        data_type: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("registers [{words}] decode as {value} ({data_type}, order {order}), not a finite number; the device reports no valid value or the map's type/order is wrong")]
    NotFinite {
        words: String,
        value: f64,
        data_type: &'static str,
        order: &'static str,
    },
    #[error("timestamp registers [{words}] hold {seconds}, not a Unix time after 2000-01-01; is the datalogger clock set?")]
    Timestamp { words: String, seconds: f64 },
}

/// Registers as hex words, e.g. `0x7FC0 0x0000`: how raw input is kept in quarantine and in messages.
pub fn hex_words(words: &[u16]) -> String {
    words
        .iter()
        .map(|w| format!("0x{w:04X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn swaps(order: WordOrder) -> (bool, bool) {
    let words_reversed = matches!(order, WordOrder::Cdab | WordOrder::Dcba);
    let bytes_swapped = matches!(order, WordOrder::Badc | WordOrder::Dcba);
    (words_reversed, bytes_swapped)
}

/// The value's bytes in big-endian order, from registers in `order`. A one-register value is never word-reversed.
fn to_be_bytes(words: &[u16], order: WordOrder) -> Vec<u8> {
    let (reversed, swapped) = swaps(order);
    let mut out = Vec::with_capacity(words.len() * 2);
    let mut push = |w: u16| {
        let [hi, lo] = w.to_be_bytes();
        if swapped {
            out.extend([lo, hi]);
        } else {
            out.extend([hi, lo]);
        }
    };
    if reversed {
        words.iter().rev().copied().for_each(&mut push);
    } else {
        words.iter().copied().for_each(&mut push);
    }
    out
}

/// Registers in `order` for a value's big-endian bytes (even length): the inverse of [`to_be_bytes`].
fn from_be_bytes(bytes: &[u8], order: WordOrder) -> Vec<u16> {
    let (reversed, swapped) = swaps(order);
    let mut words: Vec<u16> = bytes
        .chunks(2)
        .map(|c| {
            let (hi, lo) = (c[0], c.get(1).copied().unwrap_or(0));
            if swapped {
                u16::from_be_bytes([lo, hi])
            } else {
                u16::from_be_bytes([hi, lo])
            }
        })
        .collect();
    if reversed {
        words.reverse();
    }
    words
}

/// The raw number in `words` (before scale and offset). 64-bit integers above 2^53 lose precision as `f64`.
pub fn decode_raw(
    words: &[u16],
    data_type: DataType,
    order: WordOrder,
) -> Result<f64, DecodeError> {
    let expected = data_type.words() as usize;
    if words.len() != expected {
        return Err(DecodeError::Length {
            data_type: data_type.as_str(),
            expected,
            got: words.len(),
        });
    }
    let b = to_be_bytes(words, order);
    let a2 = |b: &[u8]| [b[0], b[1]];
    let a4 = |b: &[u8]| [b[0], b[1], b[2], b[3]];
    let a8 = |b: &[u8]| [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
    Ok(match data_type {
        DataType::U16 => u16::from_be_bytes(a2(&b)) as f64,
        DataType::I16 => i16::from_be_bytes(a2(&b)) as f64,
        DataType::U32 => u32::from_be_bytes(a4(&b)) as f64,
        DataType::I32 => i32::from_be_bytes(a4(&b)) as f64,
        DataType::F32 => f32_as_decimal(f32::from_be_bytes(a4(&b))),
        DataType::U64 => u64::from_be_bytes(a8(&b)) as f64,
        DataType::I64 => i64::from_be_bytes(a8(&b)) as f64,
        DataType::F64 => f64::from_be_bytes(a8(&b)),
    })
}

/// An `f32` as the `f64` of its shortest decimal form: a device's 11.43 is stored as 11.43, not 11.430000305….
fn f32_as_decimal(v: f32) -> f64 {
    if v.is_finite() {
        v.to_string().parse().unwrap_or(v as f64)
    } else {
        v as f64
    }
}

/// Registers holding `raw` as `data_type` in `order`; integers are rounded and saturate at the type's range.
/// Used by the simulator and by tests: the inverse of [`decode_raw`].
pub fn encode_raw(raw: f64, data_type: DataType, order: WordOrder) -> Vec<u16> {
    let r = raw.round();
    let bytes: Vec<u8> = match data_type {
        DataType::U16 => (r as u16).to_be_bytes().to_vec(),
        DataType::I16 => (r as i16).to_be_bytes().to_vec(),
        DataType::U32 => (r as u32).to_be_bytes().to_vec(),
        DataType::I32 => (r as i32).to_be_bytes().to_vec(),
        DataType::F32 => (raw as f32).to_be_bytes().to_vec(),
        DataType::U64 => (r as u64).to_be_bytes().to_vec(),
        DataType::I64 => (r as i64).to_be_bytes().to_vec(),
        DataType::F64 => raw.to_be_bytes().to_vec(),
    };
    from_be_bytes(&bytes, order)
}

/// A register's value in engineering units: raw × scale + offset; NaN and infinities are errors.
pub fn decode_value(words: &[u16], reg: &Register) -> Result<f64, DecodeError> {
    let raw = decode_raw(words, reg.data_type, reg.order)?;
    let value = raw * reg.scale + reg.offset;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(DecodeError::NotFinite {
            words: hex_words(words),
            value: raw,
            data_type: reg.data_type.as_str(),
            order: reg.order.as_str(),
        })
    }
}

/// Registers for a value in engineering units (inverse of [`decode_value`]).
pub fn encode_value(value: f64, reg: &Register) -> Vec<u16> {
    encode_raw((value - reg.offset) / reg.scale, reg.data_type, reg.order)
}

/// Device status from the raw status register or bit. A raw value missing from the map means the device is in a
/// state quantrac does not know: `Fault`, so it never counts for compliance.
pub fn decode_status(raw: u16, status: &StatusRegister) -> Status {
    status.map.get(&raw).copied().unwrap_or(Status::Fault)
}

/// The raw value that the map gives for `status` (the smallest if several): what a simulated device writes.
pub fn encode_status(status: Status, map: &StatusRegister) -> Option<u16> {
    map.map
        .iter()
        .find(|(_, s)| **s == status)
        .map(|(raw, _)| *raw)
}

/// 2000-01-01T00:00:00Z: a datalogger clock before this is not set.
const EARLIEST_SECONDS: f64 = 946_684_800.0;

/// Sample time from timestamp registers (Unix seconds).
pub fn decode_timestamp(words: &[u16], ts: &TimestampRegister) -> Result<Timestamp, DecodeError> {
    let seconds = decode_raw(words, ts.data_type, ts.order)?;
    // i64 milliseconds reach far beyond year 9999; bound the value so the conversion below cannot overflow.
    if !(EARLIEST_SECONDS..=253_402_300_799.0).contains(&seconds) {
        return Err(DecodeError::Timestamp {
            words: hex_words(words),
            seconds,
        });
    }
    Ok(Timestamp(seconds as i64 * 1000))
}

/// What one poll read: the words of each field, or `None` where its block failed (exception).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PollWords {
    /// Per register of the map, in map order.
    pub registers: Vec<Option<Vec<u16>>>,
    pub status: Option<Vec<u16>>,
    pub timestamp: Option<Vec<u16>>,
}

/// Everything [`assemble`] needs besides the words.
pub struct StationMap<'a> {
    pub station: &'a StationId,
    pub modbus: &'a Modbus,
    /// Unit of each register's parameter, in map order.
    pub units: &'a [Unit],
    /// `host:port` or device path, for quarantine origins.
    pub endpoint: &'a str,
}

/// One poll's words → readings (status and time attached) and quarantined values. Fields whose block failed are
/// left out (the poller has already logged the exception). When the status block failed, the readings are marked
/// `Fault`: an unknown device state must not count for compliance.
pub fn assemble(map: &StationMap<'_>, words: &PollWords, poll_time: Timestamp) -> Batch {
    let mut batch = Batch::new(SourceKind::Modbus);
    let quarantine = |origin: String, reason: String, raw: &[u16]| {
        Quarantined {
            received: poll_time,
            ..Quarantined::new(SourceKind::Modbus, origin, reason, hex_words(raw))
        }
        .with_station(map.station.as_str())
    };
    let status = match (&map.modbus.status, &words.status) {
        (None, _) => Status::Measuring,
        (Some(s), Some(w)) => w
            .first()
            .map_or(Status::Fault, |raw| decode_status(*raw, s)),
        (Some(_), None) => Status::Fault,
    };
    let ts = match (&map.modbus.timestamp, &words.timestamp) {
        (Some(t), Some(w)) => match decode_timestamp(w, t) {
            Ok(ts) => ts,
            Err(e) => {
                let at = origin(map, map.modbus.unit_id, t.kind, t.address, t.data_type);
                batch.quarantined.push(quarantine(
                    at,
                    format!("sample time unusable, values held back: {e}"),
                    w,
                ));
                // Without a trustworthy time, the values cannot be keyed; they travel in the quarantine row.
                for (reg, w) in map.modbus.registers.iter().zip(&words.registers) {
                    if let Some(w) = w {
                        let at = origin(map, reg.unit_id, reg.kind, reg.address, reg.data_type);
                        batch.quarantined.push(quarantine(
                            format!("{at} {}", reg.parameter),
                            "sample time registers unusable (see the timestamp row of this poll)"
                                .into(),
                            w,
                        ));
                    }
                }
                return batch;
            }
        },
        _ => poll_time,
    };
    for (i, reg) in map.modbus.registers.iter().enumerate() {
        let Some(Some(w)) = words.registers.get(i) else {
            continue;
        };
        let at = format!(
            "{} {}",
            origin(map, reg.unit_id, reg.kind, reg.address, reg.data_type),
            reg.parameter
        );
        match decode_value(w, reg) {
            Ok(value) => {
                batch.readings.push(Reading {
                    station: map.station.clone(),
                    parameter: reg.parameter.clone(),
                    ts,
                    value,
                    unit: map.units.get(i).cloned().unwrap_or_else(|| Unit::new("")),
                    status,
                });
                // The register words as read, should the processor refuse the value (range, clock).
                let evidence = Evidence {
                    origin: at,
                    raw: hex_words(w).into_bytes(),
                    received: poll_time,
                };
                batch.read_from(batch.readings.len() - 1, evidence);
            }
            Err(e) => batch.quarantined.push(quarantine(at, e.to_string(), w)),
        }
    }
    batch
}

/// `host:port/unit 1/holding 100..102`: where a value sits, for quarantine rows.
fn origin(map: &StationMap<'_>, unit: u8, kind: RegisterKind, address: u16, t: DataType) -> String {
    format!(
        "{}/unit {unit}/{} {}..{}",
        map.endpoint,
        kind.as_str(),
        address,
        address as u32 + t.words() as u32
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::modbus::{Transport, WordOrder::*};
    use crate::model::Parameter;
    use std::collections::BTreeMap;
    use std::time::Duration;
    use DataType::*;

    /// (type, order, words as they arrive, expected raw value). Bit patterns written by hand:
    /// 7.25f32 = 0x40E8_0000, -0.5f32 = 0xBF00_0000, 1e6f32 = 0x4974_2400;
    /// 7.25f64 = 0x401D_0000_0000_0000, -0.5f64 = 0xBFE0_0000_0000_0000, 1e6f64 = 0x412E_8480_0000_0000.
    const CASES: &[(DataType, WordOrder, &[u16], f64)] = &[
        (U16, Abcd, &[0x1234], 4660.0),
        (U16, Cdab, &[0x1234], 4660.0),
        (U16, Badc, &[0x3412], 4660.0),
        (U16, Dcba, &[0x3412], 4660.0),
        (I16, Abcd, &[0xFFFE], -2.0),
        (I16, Cdab, &[0xFFFE], -2.0),
        (I16, Badc, &[0xFEFF], -2.0),
        (I16, Dcba, &[0xFEFF], -2.0),
        (U32, Abcd, &[0x0001, 0x0002], 65_538.0),
        (U32, Cdab, &[0x0002, 0x0001], 65_538.0),
        (U32, Badc, &[0x0100, 0x0200], 65_538.0),
        (U32, Dcba, &[0x0200, 0x0100], 65_538.0),
        (I32, Abcd, &[0xFFFF, 0xFFFE], -2.0),
        (I32, Cdab, &[0xFFFE, 0xFFFF], -2.0),
        (I32, Badc, &[0xFFFF, 0xFEFF], -2.0),
        (I32, Dcba, &[0xFEFF, 0xFFFF], -2.0),
        (F32, Abcd, &[0x40E8, 0x0000], 7.25),
        (F32, Cdab, &[0x0000, 0x40E8], 7.25),
        (F32, Badc, &[0xE840, 0x0000], 7.25),
        (F32, Dcba, &[0x0000, 0xE840], 7.25),
        (F32, Abcd, &[0xBF00, 0x0000], -0.5),
        (F32, Cdab, &[0x0000, 0xBF00], -0.5),
        (F32, Badc, &[0x00BF, 0x0000], -0.5),
        (F32, Dcba, &[0x0000, 0x00BF], -0.5),
        (F32, Abcd, &[0x4974, 0x2400], 1e6),
        (F32, Cdab, &[0x2400, 0x4974], 1e6),
        (F32, Badc, &[0x7449, 0x0024], 1e6),
        (F32, Dcba, &[0x0024, 0x7449], 1e6),
        (
            U64,
            Abcd,
            &[0x0000, 0x0001, 0x0000, 0x0002],
            4_294_967_298.0,
        ),
        (
            U64,
            Cdab,
            &[0x0002, 0x0000, 0x0001, 0x0000],
            4_294_967_298.0,
        ),
        (
            U64,
            Badc,
            &[0x0000, 0x0100, 0x0000, 0x0200],
            4_294_967_298.0,
        ),
        (
            U64,
            Dcba,
            &[0x0200, 0x0000, 0x0100, 0x0000],
            4_294_967_298.0,
        ),
        (I64, Abcd, &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFD], -3.0),
        (I64, Cdab, &[0xFFFD, 0xFFFF, 0xFFFF, 0xFFFF], -3.0),
        (I64, Badc, &[0xFFFF, 0xFFFF, 0xFFFF, 0xFDFF], -3.0),
        (I64, Dcba, &[0xFDFF, 0xFFFF, 0xFFFF, 0xFFFF], -3.0),
        (F64, Abcd, &[0x401D, 0x0000, 0x0000, 0x0000], 7.25),
        (F64, Cdab, &[0x0000, 0x0000, 0x0000, 0x401D], 7.25),
        (F64, Badc, &[0x1D40, 0x0000, 0x0000, 0x0000], 7.25),
        (F64, Dcba, &[0x0000, 0x0000, 0x0000, 0x1D40], 7.25),
        (F64, Abcd, &[0xBFE0, 0x0000, 0x0000, 0x0000], -0.5),
        (F64, Cdab, &[0x0000, 0x0000, 0x0000, 0xBFE0], -0.5),
        (F64, Badc, &[0xE0BF, 0x0000, 0x0000, 0x0000], -0.5),
        (F64, Dcba, &[0x0000, 0x0000, 0x0000, 0xE0BF], -0.5),
        (F64, Abcd, &[0x412E, 0x8480, 0x0000, 0x0000], 1e6),
        (F64, Cdab, &[0x0000, 0x0000, 0x8480, 0x412E], 1e6),
        (F64, Badc, &[0x2E41, 0x8084, 0x0000, 0x0000], 1e6),
        (F64, Dcba, &[0x0000, 0x0000, 0x8084, 0x2E41], 1e6),
    ];

    #[test]
    fn every_type_and_order_decodes_hand_written_words() {
        for (t, o, words, want) in CASES {
            let got = decode_raw(words, *t, *o).unwrap();
            assert_eq!(got, *want, "{t:?} {o:?} {}", hex_words(words));
        }
    }

    #[test]
    fn encoding_is_the_inverse_of_decoding() {
        for (t, o, words, value) in CASES {
            assert_eq!(encode_raw(*value, *t, *o), *words, "{t:?} {o:?} {value}");
        }
    }

    #[test]
    fn every_type_and_order_is_covered() {
        for t in [U16, I16, U32, I32, U64, I64, F32, F64] {
            for o in [Abcd, Cdab, Badc, Dcba] {
                assert!(
                    CASES.iter().any(|(ct, co, _, _)| *ct == t && *co == o),
                    "no case for {t:?} {o:?}"
                );
            }
        }
    }

    #[test]
    fn f32_values_keep_their_decimal_form() {
        let words = encode_raw(11.43, F32, Abcd);
        assert_eq!(decode_raw(&words, F32, Abcd), Ok(11.43));
        assert_eq!(
            decode_raw(&encode_raw(1e-7, F32, Abcd), F32, Abcd),
            Ok(1e-7)
        );
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert_eq!(
            decode_raw(&[1], F32, Abcd),
            Err(DecodeError::Length {
                data_type: "f32",
                expected: 2,
                got: 1
            })
        );
    }

    fn reg(t: DataType, o: WordOrder, scale: f64, offset: f64) -> Register {
        Register {
            parameter: Parameter::new("COD").unwrap(),
            kind: RegisterKind::Holding,
            address: 0,
            data_type: t,
            order: o,
            scale,
            offset,
            unit_id: 1,
        }
    }

    #[test]
    fn scale_and_offset_apply_after_decoding() {
        // pH 7.25 stored ×100 as u16 725.
        assert_eq!(
            decode_value(&[725], &reg(U16, Abcd, 0.01, 0.0)).unwrap(),
            7.25
        );
        // Temperature stored as tenths of a degree with a −40 °C offset: 652 → 25.2 °C.
        let t = decode_value(&[652], &reg(I16, Abcd, 0.1, -40.0)).unwrap();
        assert!((t - 25.2).abs() < 1e-9, "{t}");
        // A negative scale and an f32 raw value.
        assert_eq!(
            decode_value(&[0xBF00, 0], &reg(F32, Abcd, -2.0, 1.0)).unwrap(),
            2.0
        );
        // Round trip through the simulator's encoding.
        let r = reg(I32, Cdab, 0.001, 5.0);
        assert!((decode_value(&encode_value(12.345, &r), &r).unwrap() - 12.345).abs() < 1e-9);
    }

    #[test]
    fn nan_and_infinity_are_errors_with_the_raw_words() {
        let e = decode_value(&[0x7FC0, 0x0000], &reg(F32, Abcd, 1.0, 0.0)).unwrap_err();
        assert!(
            matches!(&e, DecodeError::NotFinite { words, .. } if words == "0x7FC0 0x0000"),
            "{e}"
        );
        assert!(e.to_string().contains("not a finite number"), "{e}");
        let inf = [0x7FF0, 0, 0, 0];
        assert!(decode_value(&inf, &reg(F64, Abcd, 1.0, 0.0)).is_err());
        // Finite raw, infinite after scaling.
        assert!(decode_value(
            &[0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF],
            &reg(F64, Abcd, 10.0, 0.0)
        )
        .is_err());
    }

    fn status_reg() -> StatusRegister {
        StatusRegister {
            kind: RegisterKind::Holding,
            address: 20,
            map: BTreeMap::from([(0, Status::Measuring), (5, Status::Calibrating)]),
            unit_id: 1,
        }
    }

    #[test]
    fn unmapped_status_is_fault() {
        let s = status_reg();
        assert_eq!(decode_status(0, &s), Status::Measuring);
        assert_eq!(decode_status(5, &s), Status::Calibrating);
        assert_eq!(decode_status(1, &s), Status::Fault);
        assert_eq!(encode_status(Status::Calibrating, &s), Some(5));
        assert_eq!(encode_status(Status::Maintenance, &s), None);
    }

    #[test]
    fn timestamps_are_unix_seconds_after_2000() {
        let t = TimestampRegister {
            kind: RegisterKind::Holding,
            address: 30,
            data_type: U32,
            order: Cdab,
        };
        let words = encode_raw(1_767_225_600.0, U32, Cdab);
        assert_eq!(
            decode_timestamp(&words, &t),
            Ok(Timestamp(1_767_225_600_000))
        );
        assert!(matches!(
            decode_timestamp(&[0, 0], &t),
            Err(DecodeError::Timestamp { .. })
        ));
    }

    fn modbus(registers: Vec<Register>, status: Option<StatusRegister>) -> Modbus {
        Modbus {
            transport: Transport::Tcp {
                address: "127.0.0.1:502".into(),
            },
            unit_id: 1,
            poll_interval: None,
            timeout: Duration::from_secs(1),
            max_registers_per_request: 125,
            max_gap: 10,
            one_request_per_field: false,
            request_pause: Duration::ZERO,
            registers,
            status,
            timestamp: None,
        }
    }

    #[test]
    fn assemble_attaches_status_and_quarantines_non_finite_values() {
        let station = StationId::parse("BN_KCNQV_NUOC01").unwrap();
        let mut ph = reg(U16, Abcd, 0.01, 0.0);
        ph.parameter = Parameter::new("pH").unwrap();
        let m = modbus(vec![reg(F32, Abcd, 1.0, 0.0), ph], Some(status_reg()));
        let units = [Unit::new("mg/L"), Unit::new("-")];
        let map = StationMap {
            station: &station,
            modbus: &m,
            units: &units,
            endpoint: "127.0.0.1:502",
        };
        let words = PollWords {
            registers: vec![Some(vec![0x7FC0, 0]), Some(vec![712])],
            status: Some(vec![5]),
            timestamp: None,
        };
        let b = assemble(&map, &words, Timestamp(1_000));
        assert_eq!(b.readings.len(), 1);
        assert_eq!(
            (b.readings[0].value, b.readings[0].status, b.readings[0].ts),
            (7.12, Status::Calibrating, Timestamp(1_000))
        );
        assert_eq!(b.quarantined.len(), 1);
        let q = &b.quarantined[0];
        assert_eq!(q.origin, "127.0.0.1:502/unit 1/holding 0..2 COD");
        assert_eq!(q.raw, b"0x7FC0 0x0000");
        assert_eq!(q.station.as_deref(), Some("BN_KCNQV_NUOC01"));
        // The pH reading carries its words as read, should the processor refuse its value.
        assert_eq!(b.evidence.len(), 1);
        let (range, e) = &b.evidence[0];
        assert_eq!(range.clone(), 0..1);
        assert_eq!(
            (e.origin.as_str(), e.raw.as_slice(), e.received),
            (
                "127.0.0.1:502/unit 1/holding 0..1 pH",
                b"0x02C8".as_slice(),
                Timestamp(1_000)
            )
        );

        // Status block failed: readings still arrive, as fault; a failed value block is left out.
        let words = PollWords {
            registers: vec![None, Some(vec![712])],
            status: None,
            timestamp: None,
        };
        let b = assemble(&map, &words, Timestamp(1_000));
        assert_eq!(b.readings.len(), 1);
        assert_eq!(b.readings[0].status, Status::Fault);
        assert!(b.quarantined.is_empty());
    }
}
