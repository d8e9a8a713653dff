//! Opening a connection to a Modbus device — TCP, RTU on a serial line, RTU framed over TCP — and the one read
//! operation the poller needs. Deadlines on requests belong to the poller; this module bounds only the connect.
//!
//! [`Link`] and [`Connect`] let the poller run against an in-memory device in tests (paused time).

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_modbus::client::{rtu, tcp, Client, Context};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

use crate::config::modbus::{Modbus, Parity, RegisterKind, Transport};

/// A connection that could not be opened or broke.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot resolve {address}: {source}")]
    Resolve { address: String, source: io::Error },
    #[error("connecting to {address} failed: {source}")]
    Connect { address: String, source: io::Error },
    #[error("connecting to {address} timed out after {}", humantime::format_duration(*timeout))]
    ConnectTimeout { address: String, timeout: Duration },
    #[error("opening serial device {device} failed: {source}")]
    Serial {
        device: String,
        source: tokio_serial::Error,
    },
    #[error("no reply to {kind} {start}..={last} within {}", humantime::format_duration(*timeout))]
    Timeout {
        kind: &'static str,
        start: u16,
        last: u32,
        timeout: Duration,
    },
    /// The device (or gateway) closed the connection: the socket reports the end of the stream, a reset, or —
    /// as tokio-modbus passes it on — the error of the last call on the dead socket (EAGAIN, EINPROGRESS).
    #[error("the device closed the connection while reading {kind} {start}..={last} ({source})")]
    Closed {
        kind: &'static str,
        start: u16,
        last: u32,
        source: tokio_modbus::Error,
    },
    #[error("reading {kind} {start}..={last} failed: {source}")]
    Modbus {
        kind: &'static str,
        start: u16,
        last: u32,
        source: tokio_modbus::Error,
    },
    #[error("reply to {kind} {start}..={last} carried {got} values, expected {expected}")]
    ShortReply {
        kind: &'static str,
        start: u16,
        last: u32,
        got: usize,
        expected: usize,
    },
}

/// Whether a transport error means the peer closed the connection.
fn closed(e: &tokio_modbus::Error) -> bool {
    let tokio_modbus::Error::Transport(io) = e else {
        return false;
    };
    use io::ErrorKind::*;
    matches!(
        io.kind(),
        UnexpectedEof
            | ConnectionReset
            | ConnectionAborted
            | BrokenPipe
            | NotConnected
            | WouldBlock
    ) || matches!(io.raw_os_error(), Some(11 | 115))
}

/// The outcome of one read: words (bits as 0/1), or the device's exception.
pub type ReadResult = Result<Result<Vec<u16>, ExceptionCode>, TransportError>;

/// An open connection to one device (or gateway).
pub trait Link: Send + 'static {
    /// Address the following requests to this unit id (gateways).
    fn set_unit(&mut self, unit: u8);
    /// Read `count` registers or bits from `start`. An outer error leaves the link unusable.
    fn read(
        &mut self,
        kind: RegisterKind,
        start: u16,
        count: u16,
    ) -> impl Future<Output = ReadResult> + Send;
}

/// Opens links to one device.
pub trait Connect: Send + Sync + 'static {
    type Link: Link;
    /// `host:port` or the serial device, for messages.
    fn endpoint(&self) -> &str;
    fn connect(&self) -> impl Future<Output = Result<Self::Link, TransportError>> + Send;
}

impl Link for Context {
    fn set_unit(&mut self, unit: u8) {
        self.set_slave(Slave(unit));
    }

    async fn read(&mut self, kind: RegisterKind, start: u16, count: u16) -> ReadResult {
        let request = match kind {
            RegisterKind::Holding => Request::ReadHoldingRegisters(start, count),
            RegisterKind::Input => Request::ReadInputRegisters(start, count),
            RegisterKind::Coil => Request::ReadCoils(start, count),
            RegisterKind::Discrete => Request::ReadDiscreteInputs(start, count),
        };
        let last = start as u32 + count as u32 - 1;
        let response = match self.call(request).await {
            Ok(Ok(r)) => r,
            Ok(Err(code)) => return Ok(Err(code)),
            Err(source) if closed(&source) => {
                return Err(TransportError::Closed {
                    kind: kind.as_str(),
                    start,
                    last,
                    source,
                })
            }
            Err(source) => {
                return Err(TransportError::Modbus {
                    kind: kind.as_str(),
                    start,
                    last,
                    source,
                })
            }
        };
        // tokio-modbus's typed readers only debug_assert the length; a short reply must be an error, not a panic.
        let words: Vec<u16> = match response {
            Response::ReadHoldingRegisters(w) | Response::ReadInputRegisters(w) => w,
            Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits) => {
                bits.into_iter().map(u16::from).collect()
            }
            _ => Vec::new(),
        };
        if words.len() < count as usize {
            return Err(TransportError::ShortReply {
                kind: kind.as_str(),
                start,
                last,
                got: words.len(),
                expected: count as usize,
            });
        }
        let mut words = words;
        words.truncate(count as usize); // coil replies are padded to whole bytes
        Ok(Ok(words))
    }
}

/// Opens tokio-modbus contexts for a station's configured transport.
#[derive(Debug, Clone)]
pub struct Connector {
    transport: Transport,
    unit_id: u8,
    timeout: Duration,
    endpoint: String,
}

impl Connector {
    pub fn new(m: &Modbus) -> Self {
        let endpoint = match &m.transport {
            Transport::Tcp { address } | Transport::RtuOverTcp { address } => address.clone(),
            Transport::Rtu { device, .. } => device.clone(),
        };
        Self {
            transport: m.transport.clone(),
            unit_id: m.unit_id,
            timeout: m.timeout,
            endpoint,
        }
    }

    async fn tcp(&self, address: &str) -> Result<TcpStream, TransportError> {
        let connect = async {
            let addrs: Vec<_> = tokio::net::lookup_host(address)
                .await
                .map_err(|source| TransportError::Resolve {
                    address: address.into(),
                    source,
                })?
                .collect();
            let mut last =
                io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address");
            for a in addrs {
                match TcpStream::connect(a).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = e,
                }
            }
            Err(TransportError::Connect {
                address: address.into(),
                source: last,
            })
        };
        let stream = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| TransportError::ConnectTimeout {
                address: address.into(),
                timeout: self.timeout,
            })??;
        // Requests are small and latency-bound: do not wait to coalesce them.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

impl Connect for Connector {
    type Link = Context;

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn connect(&self) -> Result<Context, TransportError> {
        let slave = Slave(self.unit_id);
        match &self.transport {
            Transport::Tcp { address } => Ok(tcp::attach_slave(self.tcp(address).await?, slave)),
            Transport::RtuOverTcp { address } => {
                Ok(rtu::attach_slave(self.tcp(address).await?, slave))
            }
            Transport::Rtu {
                device,
                baud,
                parity,
                data_bits,
                stop_bits,
            } => {
                use tokio_serial::{DataBits, SerialPortBuilderExt, StopBits};
                let builder = tokio_serial::new(device.as_str(), *baud)
                    .parity(match parity {
                        Parity::None => tokio_serial::Parity::None,
                        Parity::Even => tokio_serial::Parity::Even,
                        Parity::Odd => tokio_serial::Parity::Odd,
                    })
                    .data_bits(if *data_bits == 7 {
                        DataBits::Seven
                    } else {
                        DataBits::Eight
                    })
                    .stop_bits(if *stop_bits == 2 {
                        StopBits::Two
                    } else {
                        StopBits::One
                    });
                let port =
                    builder
                        .open_native_async()
                        .map_err(|source| TransportError::Serial {
                            device: device.clone(),
                            source,
                        })?;
                Ok(rtu::attach_slave(port, slave))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that takes the request and closes the connection is reported as such, not as the socket's last
    /// errno ("Operation now in progress", "Resource temporarily unavailable").
    #[tokio::test]
    async fn a_device_closing_the_connection_is_named_as_such() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let device = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 12];
            let _ = socket.read(&mut request).await;
            drop(socket);
        });
        let connector = Connector {
            transport: Transport::Tcp {
                address: address.clone(),
            },
            unit_id: 1,
            timeout: Duration::from_secs(5),
            endpoint: address,
        };
        let mut link = connector.connect().await.unwrap();
        let err = tokio::time::timeout(
            Duration::from_secs(10),
            link.read(RegisterKind::Holding, 0, 2),
        )
        .await
        .expect("the read ends")
        .expect_err("the device closed the connection");
        device.await.unwrap();
        assert!(matches!(err, TransportError::Closed { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("the device closed the connection while reading holding 0..=1"),
            "{err}"
        );
    }
}
