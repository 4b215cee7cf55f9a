//! SIP over WebSocket (RFC 7118) on the HTTP server: the browser softphones' transport.
//!
//! A connection must ask for the `sip` subprotocol (RFC 7118 section 4; others get 426). Each
//! WebSocket message carries one SIP message, in either direction; the engine task treats the
//! connection like a TCP one ([`crate::engine::EngineHandle::ws_opened`]): same
//! transactions, dialogs and registrar, responses back on the connection it came on.
//!
//! Bounds, as for TCP: connections in all and per address (`sip.max_tcp_connections`, refused
//! with 503 at the upgrade), messages and frames no larger than `sip.max_message_bytes`, and a
//! connection silent for `sip.ws_idle_secs` (the node pings it every third of that) is closed.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::engine::EngineHandle;

struct WsState<M> {
    engine: EngineHandle<M>,
    max_message: usize,
    idle: std::time::Duration,
    limits: std::sync::Arc<crate::engine::tcp::ConnectionLimits>,
}

impl<M> Clone for WsState<M> {
    fn clone(&self) -> Self {
        WsState {
            engine: self.engine.clone(),
            max_message: self.max_message,
            idle: self.idle,
            limits: std::sync::Arc::clone(&self.limits),
        }
    }
}

/// The route at `sip.ws_path`, for an engine whose call handler takes `M`.
pub fn routes<M: Send + 'static>(
    cfg: &crate::engine::SipConfig,
    engine: EngineHandle<M>,
) -> Router {
    Router::new()
        .route(&cfg.ws_path, get(upgrade::<M>))
        .with_state(WsState {
            engine,
            max_message: cfg.max_message_bytes,
            idle: std::time::Duration::from_secs(cfg.ws_idle_secs.max(3)),
            limits: crate::engine::tcp::ConnectionLimits::new(
                cfg.max_tcp_connections,
                cfg.max_tcp_connections_per_ip,
            ),
        })
}

async fn upgrade<M: Send + 'static>(
    State(state): State<WsState<M>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let asks_sip = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"));
    if !asks_sip {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "SIP over WebSocket needs the \"sip\" subprotocol (RFC 7118)",
        )
            .into_response();
    }
    let Some(admitted) = state.limits.admit(addr.ip()) else {
        metrics::counter!("hotline_sip_dropped_total", "reason" => "ws_limit").increment(1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many SIP WebSocket connections (sip.max_tcp_connections_per_ip)",
        )
            .into_response();
    };
    ws.protocols(["sip"])
        .max_message_size(state.max_message)
        .max_frame_size(state.max_message)
        .on_upgrade(move |socket| async move {
            connection(socket, addr, state).await;
            drop(admitted);
        })
}

async fn connection<M: Send + 'static>(mut socket: WebSocket, addr: SocketAddr, state: WsState<M>) {
    let Some(mut outgoing) = state.engine.ws_opened(addr).await else {
        return;
    };
    tracing::debug!(%addr, "SIP WebSocket connection opened");
    let mut ping = tokio::time::interval(state.idle / 3);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if heard.elapsed() >= state.idle {
                    tracing::debug!(%addr, "SIP WebSocket connection idle: closed");
                    metrics::counter!("hotline_sip_dropped_total", "reason" => "ws_idle").increment(1);
                    break;
                }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            out = outgoing.recv() => {
                let Some(bytes) = out else { break };
                // SIP is UTF-8 text; a body that is not goes as a binary message.
                let msg = match String::from_utf8(bytes) {
                    Ok(text) => Message::Text(text.into()),
                    Err(e) => Message::Binary(e.into_bytes().into()),
                };
                if socket.send(msg).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => {
                if matches!(msg, Some(Ok(_))) {
                    heard = tokio::time::Instant::now();
                }
                match msg {
                Some(Ok(Message::Text(t))) => {
                    let bytes = t.as_str().as_bytes().to_vec();
                    if bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                        continue; // a keep-alive, as on TCP
                    }
                    if !state.engine.ws_message(addr, bytes).await {
                        break;
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    if !state.engine.ws_message(addr, b.to_vec()).await {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                }
            }
        }
    }
    tracing::debug!(%addr, "SIP WebSocket connection closed");
    state.engine.ws_closed(addr).await;
}
