//! The listeners: UDP (one datagram, one message), TCP and TLS (framed streams, one task per
//! connection, bounded in number).

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    io::{AsyncRead, AsyncReadExt},
    net::{TcpListener, UdpSocket},
    sync::{Semaphore, mpsc},
    task::JoinHandle,
};

use crate::{Framer, SyslogRecord, Transport, parse};

/// Where and how to listen.
#[derive(Clone)]
pub struct SyslogSettings {
    /// UDP address (RFC 5426), if any.
    pub udp: Option<SocketAddr>,
    /// Plain TCP address (RFC 6587), if any.
    pub tcp: Option<SocketAddr>,
    /// TLS address (RFC 5425) and the server configuration, if any.
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// Longest message accepted, bytes (longer ones are counted and skipped).
    pub max_message_bytes: usize,
    /// Most stream connections at once (more are refused and counted).
    pub max_connections: usize,
}

impl std::fmt::Debug for SyslogSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSettings")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .field("tls", &self.tls.as_ref().map(|(a, _)| a))
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Why the listeners could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    /// A port could not be bound.
    #[error("cannot listen for syslog on {transport} {address}: {source}")]
    Bind {
        /// `udp`, `tcp` or `tls`.
        transport: &'static str,
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The running listeners; dropping them stops them.
#[derive(Debug)]
pub struct SyslogListeners {
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    tls: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SyslogListeners {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl SyslogListeners {
    /// Binds what `settings` names and hands every record to `sink`.
    pub async fn start(
        settings: SyslogSettings,
        sink: mpsc::Sender<SyslogRecord>,
    ) -> Result<SyslogListeners, SyslogError> {
        let mut out = SyslogListeners {
            udp: None,
            tcp: None,
            tls: None,
            tasks: Vec::new(),
        };
        let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
        if let Some(address) = settings.udp {
            let socket = UdpSocket::bind(address)
                .await
                .map_err(|source| SyslogError::Bind {
                    transport: "udp",
                    address,
                    source,
                })?;
            out.udp = socket.local_addr().ok();
            out.tasks.push(tokio::spawn(udp(
                socket,
                settings.max_message_bytes,
                sink.clone(),
            )));
        }
        for (address, tls, transport) in [
            settings.tcp.map(|a| (a, None, Transport::Tcp)),
            settings
                .tls
                .clone()
                .map(|(a, c)| (a, Some(tokio_rustls::TlsAcceptor::from(c)), Transport::Tls)),
        ]
        .into_iter()
        .flatten()
        {
            let listener =
                TcpListener::bind(address)
                    .await
                    .map_err(|source| SyslogError::Bind {
                        transport: transport.as_str(),
                        address,
                        source,
                    })?;
            let bound = listener.local_addr().ok();
            match transport {
                Transport::Tls => out.tls = bound,
                _ => out.tcp = bound,
            }
            out.tasks.push(tokio::spawn(accept(
                listener,
                tls,
                settings.max_message_bytes,
                slots.clone(),
                sink.clone(),
            )));
        }
        Ok(out)
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// The bound TLS address.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
    }
}

async fn udp(socket: UdpSocket, max: usize, sink: mpsc::Sender<SyslogRecord>) {
    // One byte more than allowed tells an oversized datagram from one exactly at the limit.
    let mut buffer = vec![0u8; max.saturating_add(1).min(65_536)];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        if n > max {
            metrics::counter!("garrison_syslog_oversized_total", "transport" => "udp").increment(1);
            continue;
        }
        let record = parse(&buffer[..n], peer.ip(), Transport::Udp, now_ms());
        count(&record);
        // UDP cannot be slowed down: what does not fit is counted, not waited for.
        match sink.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("garrison_syslog_dropped_total", "transport" => "udp")
                    .increment(1);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max: usize,
    slots: Arc<Semaphore>,
    sink: mpsc::Sender<SyslogRecord>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics::counter!("garrison_syslog_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let sink = sink.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => read_stream(stream, peer, transport, max, sink).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls)) => read_stream(tls, peer, transport, max, sink).await,
                        _ => {
                            metrics::counter!("garrison_syslog_tls_handshake_failures_total")
                                .increment(1);
                        }
                    }
                }
            }
        });
    }
}

async fn read_stream<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    transport: Transport,
    max: usize,
    sink: mpsc::Sender<SyslogRecord>,
) {
    let mut framer = Framer::new(max);
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(&buffer[..n]);
        while let Some(frame) = framer.next_frame() {
            match frame {
                Ok(line) => {
                    let record = parse(&line, peer.ip(), transport, now_ms());
                    count(&record);
                    // Awaited: a slow consumer stops this reader, and TCP slows the sender.
                    if sink.send(record).await.is_err() {
                        return;
                    }
                }
                Err(crate::FrameError::TooLong(..)) => {
                    metrics::counter!("garrison_syslog_oversized_total", "transport" => transport.as_str()).increment(1);
                }
                Err(e @ crate::FrameError::BadCount(_)) => {
                    tracing::warn!(%peer, error = %e, "Closing a syslog stream that lost its framing");
                    metrics::counter!("garrison_syslog_framing_errors_total").increment(1);
                    return;
                }
            }
        }
    }
    if let Some(last) = framer.finish() {
        let record = parse(&last, peer.ip(), transport, now_ms());
        count(&record);
        let _ = sink.send(record).await;
    }
}

fn count(record: &SyslogRecord) {
    let transport = record.transport.as_str();
    metrics::counter!("garrison_syslog_messages_total", "transport" => transport).increment(1);
    if !record.parsed {
        metrics::counter!("garrison_syslog_unparsed_total", "transport" => transport).increment(1);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
