//! SIP over TCP: the accept loop (limits in all and per address) and one reader and writer
//! per connection. The reader frames messages by Content-Length (RFC 3261 18.3) and answers
//! CRLF keep-alives; the writer is fed by the engine task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotline_sip::message::{FrameEvent, StreamFramer};
use hotline_sip::transaction::{Peer, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Input;

/// Connections open at once, in all and from one address: SIP over TCP and over WebSocket
/// each keep one (`sip.max_tcp_connections`, `sip.max_tcp_connections_per_ip`).
#[derive(Debug)]
pub struct ConnectionLimits {
    max: usize,
    max_per_ip: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection admitted; given back when dropped.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut c) = self.limits.counts.lock()
            && let Some(n) = c.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    /// At most `max` connections, `max_per_ip` from one address.
    pub fn new(max: usize, max_per_ip: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max,
            max_per_ip,
            counts: Mutex::default(),
        })
    }

    /// A place for a connection from `ip`, or `None` when the limits are reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let mut c = self.counts.lock().ok()?;
        let total: usize = c.values().sum();
        let mine = c.entry(ip).or_insert(0);
        if total >= self.max || *mine >= self.max_per_ip {
            return None;
        }
        *mine += 1;
        Some(Admitted {
            limits: Arc::clone(self),
            ip,
        })
    }
}

pub(super) async fn accept_loop<M: Send + 'static>(
    listener: TcpListener,
    engine: mpsc::Sender<Input<M>>,
    max_message: usize,
    max_conns: usize,
    max_per_ip: usize,
    shutdown: CancellationToken,
) {
    let limits = ConnectionLimits::new(max_conns, max_per_ip);
    loop {
        let (stream, addr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = limits.admit(addr.ip()) else {
            metrics::counter!("hotline_sip_dropped_total", "reason" => "tcp_limit").increment(1);
            drop(stream);
            continue;
        };
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            connection(stream, addr, engine, max_message, shutdown).await;
            drop(admitted);
        });
    }
}

async fn connection<M: Send + 'static>(
    stream: TcpStream,
    addr: SocketAddr,
    engine: mpsc::Sender<Input<M>>,
    max_message: usize,
    shutdown: CancellationToken,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(256);
    if engine
        .send(Input::Opened(addr, out_tx.clone()))
        .await
        .is_err()
    {
        return;
    }
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let peer = Peer {
        addr,
        transport: TransportKind::Tcp,
    };
    let mut framer = StreamFramer::new(max_message);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = reader.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_event() {
                Ok(Some(FrameEvent::Message(m))) => {
                    if engine.send(Input::Stream(peer, m)).await.is_err() {
                        break 'read;
                    }
                }
                Ok(Some(FrameEvent::KeepAlive)) => {
                    // RFC 5626 4.4.1: a CRLF CRLF ping gets a CRLF pong.
                    let _ = out_tx.send(b"\r\n".to_vec()).await;
                }
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be framed any further (RFC 4475 3.1.2.3, 3.3.9):
                    // nothing after this point can be trusted, so the connection closes,
                    // after a 513 when an oversize request's headers could be read.
                    if let Some(reply) = e.reply {
                        let _ = out_tx.send(reply).await;
                    }
                    metrics::counter!("hotline_sip_dropped_total", "reason" => "framing")
                        .increment(1);
                    tracing::debug!(%addr, status = e.status, detail = e.detail, "closing a TCP connection");
                    break 'read;
                }
            }
        }
    }
    // The engine drops its sender on Closed; the writer then flushes what is queued and ends.
    let _ = engine.send(Input::Closed(addr)).await;
    drop(out_tx);
    let _ = writer_task.await;
}
