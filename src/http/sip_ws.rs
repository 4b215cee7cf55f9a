//! SIP over WebSocket (RFC 7118) on the HTTP server: the browser softphones' transport.
//!
//! A connection must ask for the `sip` subprotocol (RFC 7118 section 4; others get 426). Each
//! WebSocket message carries one SIP message, in either direction; the engine task treats the
//! connection like a TCP one ([`crate::engine::EngineHandle::ws_opened`]): same
//! transactions, dialogs and registrar, responses back on the connection it came on.

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
}

impl<M> Clone for WsState<M> {
    fn clone(&self) -> Self {
        WsState {
            engine: self.engine.clone(),
            max_message: self.max_message,
        }
    }
}

/// The route at `path` (`sip.ws_path`), for an engine whose call handler takes `M`.
pub fn routes<M: Send + 'static>(
    path: &str,
    engine: EngineHandle<M>,
    max_message: usize,
) -> Router {
    Router::new()
        .route(path, get(upgrade::<M>))
        .with_state(WsState {
            engine,
            max_message,
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
    ws.protocols(["sip"])
        .max_message_size(state.max_message)
        .on_upgrade(move |socket| connection(socket, addr, state))
}

async fn connection<M: Send + 'static>(mut socket: WebSocket, addr: SocketAddr, state: WsState<M>) {
    let Some(mut outgoing) = state.engine.ws_opened(addr).await else {
        return;
    };
    tracing::debug!(%addr, "SIP WebSocket connection opened");
    loop {
        tokio::select! {
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
            msg = socket.recv() => match msg {
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
            },
        }
    }
    tracing::debug!(%addr, "SIP WebSocket connection closed");
    state.engine.ws_closed(addr).await;
}
