//! `[station.modbus]`: how to reach a station over Modbus and where its values sit (register map).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::duration::DurationText;
use super::Problems;
use crate::model::{Parameter, Status};

/// Modbus access to one station, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusSection {
    /// `tcp` (Modbus TCP), `rtu` (serial line) or `rtu-over-tcp` (RTU frames through a serial-to-Ethernet converter).
    #[serde(default = "default_transport")]
    pub transport: String,
    /// `host:port` for `tcp` and `rtu-over-tcp`.
    pub address: Option<String>,
    /// Serial device for `rtu`, e.g. `/dev/ttyUSB0`.
    pub device: Option<String>,
    /// Serial speed (default 9600).
    pub baud: Option<u32>,
    /// Serial parity: `none` (default), `even`, `odd`.
    pub parity: Option<String>,
    /// Serial data bits: 7 or 8 (default 8).
    pub data_bits: Option<u8>,
    /// Serial stop bits: 1 (default) or 2.
    pub stop_bits: Option<u8>,
    /// Default Modbus unit (slave) id; a register may name another one (gateways).
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// Poll interval (default: the station's reporting interval).
    pub poll_interval: Option<DurationText>,
    /// Deadline for connecting and for every request.
    #[serde(default = "default_timeout")]
    pub timeout: DurationText,
    /// How addresses in this file count: `zero-based` (protocol addresses, default) or `one-based` (as in many
    /// device manuals: register 1 is protocol address 0).
    #[serde(default = "default_addressing")]
    pub addressing: String,
    /// Most registers merged into one read request (protocol maximum 125).
    #[serde(default = "default_max_registers")]
    pub max_registers_per_request: u16,
    /// Most unused registers read to merge two neighbouring fields into one request.
    #[serde(default = "default_max_gap")]
    pub max_gap: u16,
    /// Read every field with its own request (fragile devices).
    #[serde(default)]
    pub one_request_per_field: bool,
    /// Pause between two requests to the same device.
    #[serde(default = "default_pause")]
    pub request_pause: DurationText,
    /// Where each parameter's value sits.
    #[serde(default)]
    pub registers: Vec<RegisterSection>,
    /// Where the device status sits (default: every reading is `measuring`).
    pub status: Option<StatusSection>,
    /// Registers holding the sample time as Unix seconds (default: the poll time).
    pub timestamp: Option<TimestampSection>,
}

fn default_transport() -> String {
    "tcp".into()
}
fn default_unit_id() -> u8 {
    1
}
fn default_timeout() -> DurationText {
    DurationText::new("3s")
}
fn default_addressing() -> String {
    "zero-based".into()
}
fn default_max_registers() -> u16 {
    125
}
fn default_max_gap() -> u16 {
    10
}
fn default_pause() -> DurationText {
    DurationText::new("0s")
}

/// One parameter's value in the register map.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSection {
    /// Parameter symbol; must be one of the station's parameters.
    pub parameter: String,
    /// `holding` (default) or `input`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Register address (see `addressing`).
    pub address: u16,
    /// `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `f32`, `f64`.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Byte/word order of multi-register values: `ABCD` (big-endian, default), `CDAB` (word swap),
    /// `BADC` (byte swap), `DCBA` (little-endian).
    #[serde(default = "default_order")]
    pub order: String,
    /// value = raw × scale + offset.
    #[serde(default = "default_scale")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    /// Unit id for this register, if not the station's.
    pub unit_id: Option<u8>,
}

fn default_kind() -> String {
    "holding".into()
}
fn default_order() -> String {
    "ABCD".into()
}
fn default_scale() -> f64 {
    1.0
}

/// Device status in the register map.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSection {
    /// `holding`, `input`, `coil` or `discrete`.
    pub kind: String,
    pub address: u16,
    /// Raw value → status (`measuring`, `calibrating`, `fault`, `maintenance` or codes `00`–`03`).
    /// For coils and discrete inputs the keys are `0` and `1`. Default: 0 → measuring, 1 → calibrating,
    /// 2 → fault, 3 → maintenance. A raw value missing from the map means `fault`.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Unit id for the status, if not the station's.
    pub unit_id: Option<u8>,
}

/// Sample time registers: a `u32` or `u64` of Unix seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampSection {
    #[serde(default = "default_kind")]
    pub kind: String,
    pub address: u16,
    #[serde(rename = "type", default = "default_ts_type")]
    pub data_type: String,
    #[serde(default = "default_order")]
    pub order: String,
}

fn default_ts_type() -> String {
    "u32".into()
}

/// Transport to a Modbus device.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Tcp {
        address: String,
    },
    RtuOverTcp {
        address: String,
    },
    Rtu {
        device: String,
        baud: u32,
        parity: Parity,
        data_bits: u8,
        stop_bits: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegisterKind {
    Holding,
    Input,
    Coil,
    Discrete,
}

impl RegisterKind {
    /// The name used in config and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RegisterKind::Holding => "holding",
            RegisterKind::Input => "input",
            RegisterKind::Coil => "coil",
            RegisterKind::Discrete => "discrete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DataType {
    const NAMES: [(&'static str, DataType); 8] = [
        ("u16", DataType::U16),
        ("i16", DataType::I16),
        ("u32", DataType::U32),
        ("i32", DataType::I32),
        ("u64", DataType::U64),
        ("i64", DataType::I64),
        ("f32", DataType::F32),
        ("f64", DataType::F64),
    ];
    /// The name used in config and in messages.
    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("?", |(n, _)| n)
    }
    /// Registers (16-bit words) the value occupies.
    pub fn words(self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }
    fn parse(s: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                format!(
                    "unknown type {s:?}; expected one of {}",
                    Self::NAMES.map(|(n, _)| n).join(", ")
                )
            })
    }
}

/// Byte/word order. Letters name the bytes of a 32-bit big-endian value A B C D as they arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordOrder {
    Abcd,
    Cdab,
    Badc,
    Dcba,
}

impl WordOrder {
    /// The name used in config and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            WordOrder::Abcd => "ABCD",
            WordOrder::Cdab => "CDAB",
            WordOrder::Badc => "BADC",
            WordOrder::Dcba => "DCBA",
        }
    }
    fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "ABCD" => Ok(WordOrder::Abcd),
            "CDAB" => Ok(WordOrder::Cdab),
            "BADC" => Ok(WordOrder::Badc),
            "DCBA" => Ok(WordOrder::Dcba),
            _ => Err(format!(
                "unknown order {s:?}; expected one of ABCD, CDAB, BADC, DCBA"
            )),
        }
    }
}

/// One checked field of the register map. `address` is the protocol (zero-based) address.
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    pub parameter: Parameter,
    pub kind: RegisterKind,
    pub address: u16,
    pub data_type: DataType,
    pub order: WordOrder,
    pub scale: f64,
    pub offset: f64,
    pub unit_id: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusRegister {
    pub kind: RegisterKind,
    pub address: u16,
    pub map: BTreeMap<u16, Status>,
    pub unit_id: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimestampRegister {
    pub kind: RegisterKind,
    pub address: u16,
    pub data_type: DataType,
    pub order: WordOrder,
}

/// Checked Modbus access.
#[derive(Debug, Clone, PartialEq)]
pub struct Modbus {
    pub transport: Transport,
    pub unit_id: u8,
    pub poll_interval: Option<Duration>,
    pub timeout: Duration,
    pub max_registers_per_request: u16,
    pub max_gap: u16,
    pub one_request_per_field: bool,
    pub request_pause: Duration,
    pub registers: Vec<Register>,
    pub status: Option<StatusRegister>,
    pub timestamp: Option<TimestampRegister>,
}

impl Modbus {
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Tcp { address } => format!("modbus tcp {address} unit {}", self.unit_id),
            Transport::RtuOverTcp { address } => {
                format!("modbus rtu-over-tcp {address} unit {}", self.unit_id)
            }
            Transport::Rtu { device, baud, .. } => {
                format!("modbus rtu {device} {baud} baud unit {}", self.unit_id)
            }
        }
    }
}

fn parse_kind(s: &str, allow_bits: bool) -> Result<RegisterKind, String> {
    match (s, allow_bits) {
        ("holding", _) => Ok(RegisterKind::Holding),
        ("input", _) => Ok(RegisterKind::Input),
        ("coil", true) => Ok(RegisterKind::Coil),
        ("discrete", true) => Ok(RegisterKind::Discrete),
        (_, true) => Err(format!(
            "unknown register kind {s:?}; expected one of holding, input, coil, discrete"
        )),
        (_, false) => Err(format!(
            "unknown register kind {s:?}; expected one of holding, input"
        )),
    }
}

/// How addresses in the file count; turns a written address into the protocol (zero-based) one.
#[derive(Clone, Copy)]
struct Addressing {
    one_based: bool,
}

impl Addressing {
    fn protocol(self, p: &mut Problems, path: String, a: u16) -> u16 {
        if self.one_based {
            if a == 0 {
                p.push(
                    path,
                    "address 0 does not exist with one-based addressing; the first register is 1",
                );
            }
            a.saturating_sub(1)
        } else {
            a
        }
    }
}

impl ModbusSection {
    pub(super) fn validate(
        &self,
        p: &mut Problems,
        key: &str,
        parameters: &[&str],
    ) -> Option<Modbus> {
        let before = p.len();
        let transport = self.transport(p, key);
        let addressing = self.addressing(p, key);
        if !(1..=125).contains(&self.max_registers_per_request) {
            p.push(
                format!("{key}.max_registers_per_request"),
                format!(
                    "{} is out of range; expected 1 to 125",
                    self.max_registers_per_request
                ),
            );
        }
        if self.registers.is_empty() {
            p.push(
                format!("{key}.registers"),
                "no registers; map at least one parameter to a register",
            );
        }
        let registers = self
            .registers
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let rk = format!("{key}.registers[{i}]");
                r.validate(p, &rk, parameters, self.unit_id, addressing)
            })
            .collect();
        let status = self
            .status
            .as_ref()
            .and_then(|s| s.validate(p, &format!("{key}.status"), self.unit_id, addressing));
        let timestamp = self
            .timestamp
            .as_ref()
            .and_then(|t| t.validate(p, &format!("{key}.timestamp"), addressing));
        let poll_interval = self
            .poll_interval
            .as_ref()
            .map(|d| d.check_positive(p, &format!("{key}.poll_interval")));
        let timeout = self.timeout.check_positive(p, &format!("{key}.timeout"));
        let request_pause = self.request_pause.check(p, &format!("{key}.request_pause"));
        (p.len() == before).then_some(Modbus {
            transport,
            unit_id: self.unit_id,
            poll_interval,
            timeout,
            max_registers_per_request: self.max_registers_per_request,
            max_gap: self.max_gap,
            one_request_per_field: self.one_request_per_field,
            request_pause,
            registers,
            status,
            timestamp,
        })
    }

    fn transport(&self, p: &mut Problems, key: &str) -> Transport {
        match self.transport.as_str() {
            "tcp" => Transport::Tcp {
                address: self.network_address(p, key),
            },
            "rtu-over-tcp" => Transport::RtuOverTcp {
                address: self.network_address(p, key),
            },
            "rtu" => self.serial(p, key),
            other => {
                p.push(
                    format!("{key}.transport"),
                    format!("unknown transport {other:?}; expected one of tcp, rtu, rtu-over-tcp"),
                );
                Transport::Tcp {
                    address: String::new(),
                }
            }
        }
    }

    /// `host:port` of a networked transport.
    fn network_address(&self, p: &mut Problems, key: &str) -> String {
        match &self.address {
            Some(a) if a.parse::<std::net::SocketAddr>().is_ok() || a.contains(':') => a.clone(),
            Some(a) => {
                p.push(format!("{key}.address"), format!("{a:?} is not host:port"));
                String::new()
            }
            None => {
                p.push(
                    format!("{key}.address"),
                    format!("missing; transport {:?} needs host:port", self.transport),
                );
                String::new()
            }
        }
    }

    /// The serial line settings of transport `rtu`.
    fn serial(&self, p: &mut Problems, key: &str) -> Transport {
        let device = self.device.clone().unwrap_or_else(|| {
            p.push(
                format!("{key}.device"),
                "missing; transport \"rtu\" needs a serial device such as /dev/ttyUSB0",
            );
            String::new()
        });
        let parity = match self.parity.as_deref().unwrap_or("none") {
            "none" => Parity::None,
            "even" => Parity::Even,
            "odd" => Parity::Odd,
            other => {
                p.push(
                    format!("{key}.parity"),
                    format!("unknown parity {other:?}; expected one of none, even, odd"),
                );
                Parity::None
            }
        };
        let data_bits = self.data_bits.unwrap_or(8);
        if !(data_bits == 7 || data_bits == 8) {
            p.push(
                format!("{key}.data_bits"),
                format!("{data_bits} is not supported; expected 7 or 8"),
            );
        }
        let stop_bits = self.stop_bits.unwrap_or(1);
        if !(stop_bits == 1 || stop_bits == 2) {
            p.push(
                format!("{key}.stop_bits"),
                format!("{stop_bits} is not supported; expected 1 or 2"),
            );
        }
        Transport::Rtu {
            device,
            baud: self.baud.unwrap_or(9600),
            parity,
            data_bits,
            stop_bits,
        }
    }

    fn addressing(&self, p: &mut Problems, key: &str) -> Addressing {
        let one_based = match self.addressing.as_str() {
            "zero-based" => false,
            "one-based" => true,
            other => {
                p.push(
                    format!("{key}.addressing"),
                    format!("unknown addressing {other:?}; expected one of zero-based, one-based"),
                );
                false
            }
        };
        Addressing { one_based }
    }
}

impl RegisterSection {
    /// One field of the register map at `rk`; `unit_id` is the station's default.
    fn validate(
        &self,
        p: &mut Problems,
        rk: &str,
        parameters: &[&str],
        unit_id: u8,
        addressing: Addressing,
    ) -> Option<Register> {
        let parameter = if parameters.contains(&self.parameter.as_str()) {
            Parameter::new(&self.parameter).ok()
        } else {
            p.push(
                format!("{rk}.parameter"),
                format!(
                    "{:?} is not a parameter of this station; expected one of {}",
                    self.parameter,
                    parameters.join(", ")
                ),
            );
            None
        };
        let kind = parse_kind(&self.kind, false)
            .map_err(|e| p.push(format!("{rk}.kind"), e))
            .ok();
        let data_type = DataType::parse(&self.data_type)
            .map_err(|e| p.push(format!("{rk}.type"), e))
            .ok();
        let order = WordOrder::parse(&self.order)
            .map_err(|e| p.push(format!("{rk}.order"), e))
            .ok();
        if !(self.scale.is_finite() && self.scale != 0.0) {
            p.push(
                format!("{rk}.scale"),
                format!(
                    "{} is not a usable scale; expected a finite non-zero number",
                    self.scale
                ),
            );
        }
        if !self.offset.is_finite() {
            p.push(format!("{rk}.offset"), "must be a finite number");
        }
        let addr = addressing.protocol(p, format!("{rk}.address"), self.address);
        if let Some(t) = data_type {
            if addr as u32 + t.words() as u32 > 65_536 {
                p.push(
                    format!("{rk}.address"),
                    format!(
                        "{} plus {} registers runs past the end of the register space",
                        self.address,
                        t.words()
                    ),
                );
            }
        }
        Some(Register {
            parameter: parameter?,
            kind: kind?,
            address: addr,
            data_type: data_type?,
            order: order?,
            scale: self.scale,
            offset: self.offset,
            unit_id: self.unit_id.unwrap_or(unit_id),
        })
    }
}

impl StatusSection {
    /// The status register at `sk`; `unit_id` is the station's default.
    fn validate(
        &self,
        p: &mut Problems,
        sk: &str,
        unit_id: u8,
        addressing: Addressing,
    ) -> Option<StatusRegister> {
        let kind = parse_kind(&self.kind, true)
            .map_err(|e| p.push(format!("{sk}.kind"), e))
            .ok()?;
        let mut map = BTreeMap::new();
        if self.map.is_empty() {
            for st in Status::ALL {
                map.insert(st as u16, st);
            }
        }
        for (raw, name) in &self.map {
            match (raw.parse::<u16>(), Status::parse(name)) {
                (Ok(v), Ok(st)) => {
                    map.insert(v, st);
                }
                (Err(_), _) => p.push(
                    format!("{sk}.map.{raw}"),
                    format!("{raw:?} is not a raw register value (0 to 65535)"),
                ),
                (_, Err(e)) => p.push(format!("{sk}.map.{raw}"), e),
            }
        }
        Some(StatusRegister {
            kind,
            address: addressing.protocol(p, format!("{sk}.address"), self.address),
            map,
            unit_id: self.unit_id.unwrap_or(unit_id),
        })
    }
}

impl TimestampSection {
    /// The sample time registers at `tk`.
    fn validate(
        &self,
        p: &mut Problems,
        tk: &str,
        addressing: Addressing,
    ) -> Option<TimestampRegister> {
        let kind = parse_kind(&self.kind, false)
            .map_err(|e| p.push(format!("{tk}.kind"), e))
            .ok()?;
        let data_type = match self.data_type.as_str() {
            "u32" => DataType::U32,
            "u64" => DataType::U64,
            other => {
                p.push(
                    format!("{tk}.type"),
                    format!(
                        "unknown timestamp type {other:?}; expected one of u32, u64 (Unix seconds)"
                    ),
                );
                return None;
            }
        };
        let order = WordOrder::parse(&self.order)
            .map_err(|e| p.push(format!("{tk}.order"), e))
            .ok()?;
        Some(TimestampRegister {
            kind,
            address: addressing.protocol(p, format!("{tk}.address"), self.address),
            data_type,
            order,
        })
    }
}
