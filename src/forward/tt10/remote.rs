//! One connection to a target's server, whatever the protocol: connect and log in, then upload files (under a
//! hidden temporary name, then renamed, so a receiver never reads half a file). Every call has the target's timeout.

use super::ftp::Ftp;
use super::sftp::Sftp;
use super::transfer::{timed, TransmitError};
use crate::config::transmit::{Protocol, Target};

/// A logged-in connection.
pub enum Connection {
    Ftp(Box<Ftp>),
    Sftp(Box<Sftp>),
}

impl Connection {
    pub async fn open(t: &Target) -> Result<Connection, TransmitError> {
        Ok(match t.protocol {
            Protocol::Ftp | Protocol::Ftps => Connection::Ftp(Box::new(Ftp::open(t).await?)),
            Protocol::Sftp => Connection::Sftp(Box::new(Sftp::open(t).await?)),
        })
    }

    /// Upload `bytes` as `dir/name` (a temporary hidden name first, then renamed over any earlier version).
    pub async fn upload(
        &mut self,
        t: &Target,
        dir: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), TransmitError> {
        match self {
            Connection::Ftp(c) => c.upload(t, dir, name, bytes).await,
            Connection::Sftp(c) => c.upload(t, dir, name, bytes).await,
        }
    }

    /// Say goodbye politely (bounded by the timeout; errors do not matter any more).
    pub async fn close(self, t: &Target) {
        let _ = match self {
            Connection::Ftp(c) => timed(t.timeout, "QUIT", c.close()).await,
            Connection::Sftp(c) => timed(t.timeout, "disconnect", c.close()).await,
        };
    }
}
