//! SIP over WebSocket (RFC 7118) on the HTTP port of a running node: a connection without the
//! `sip` subprotocol is refused with 426; with it, a REGISTER is answered on the same
//! connection with a digest challenge, MD5 first for JsSIP (which reads only the first
//! challenge and knows only MD5) and the configured preference (SHA-256 first) for others;
//! and a CRLF keep-alive is not mistaken for a message. The agent desktop's page is served on
//! the same port.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn register(branch: &str, user_agent: &str) -> String {
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:1001@127.0.0.1>\r\n\
         From: <sip:1001@127.0.0.1>;tag=ws{branch}\r\n\
         Call-ID: ws-{branch}\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:k3v1@df7jal23ls0d.invalid;transport=ws>;expires=60\r\n\
         User-Agent: {user_agent}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The value of the first `WWW-Authenticate` header of `response`.
fn first_challenge(response: &str) -> &str {
    response
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .unwrap_or_else(|| panic!("no challenge in {response}"))
}

#[test]
fn sip_over_websocket_needs_its_subprotocol_and_challenges_jssip_with_md5_first() {
    let mut node = start_sip_node("digest_algorithms = [\"SHA-256\", \"MD5\"]");
    let base = node.node.wait_http();
    // The agent desktop is served beside it (built by scripts/web.sh, which the tests run).
    let page = reqwest::blocking::get(format!("{base}/agent/")).unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().unwrap().contains("坐席台"));
    let missing = reqwest::blocking::get(format!("{base}/agent/nothing.js")).unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let url = format!("{}/sip", base.replace("http://", "ws://"));
    block_on(async move {
        // No subprotocol: 426 Upgrade Required, no connection.
        match tokio_tungstenite::connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 426);
            }
            other => panic!("expected 426, got {other:?}"),
        }

        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.headers()["sec-websocket-protocol"], "sip");

        let next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| -> String {
            let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("an answer within 5 s")
                .expect("the connection stays open")
                .unwrap();
            match msg {
                Message::Text(t) => t.to_string(),
                other => panic!("expected a text message, got {other:?}"),
            }
        };

        // A keep-alive first: ignored, the REGISTER after it is answered.
        ws.send(Message::Text("\r\n\r\n".into())).await.unwrap();
        ws.send(Message::Text(register("a1", "JsSIP 3.13.8").into()))
            .await
            .unwrap();
        let answer = next(&mut ws).await;
        assert!(answer.starts_with("SIP/2.0 401"), "{answer}");
        assert!(answer.contains("branch=z9hG4bKa1"), "{answer}");
        assert!(
            first_challenge(&answer).contains("algorithm=MD5"),
            "JsSIP gets MD5 first: {answer}"
        );

        ws.send(Message::Text(register("b2", "Linphone/5.2").into()))
            .await
            .unwrap();
        let answer = next(&mut ws).await;
        assert!(answer.starts_with("SIP/2.0 401"), "{answer}");
        assert!(
            first_challenge(&answer).contains("algorithm=SHA-256"),
            "others get the configured preference: {answer}"
        );
    });
}

/// The bounds of TCP hold for SIP over WebSocket too (issue 22, item 8): a frame larger than
/// `sip.max_message_bytes` ends the connection, connections past
/// `sip.max_tcp_connections_per_ip` are refused (503) at the upgrade, and a connection that
/// answers nothing, not even the node's pings, is closed after `sip.ws_idle_secs`.
#[test]
fn websocket_connections_are_bounded_in_size_number_and_silence() {
    let mut node = start_sip_node(
        "max_message_bytes = 4096\nmax_tcp_connections_per_ip = 2\nws_idle_secs = 3",
    );
    let base = node.node.wait_http();
    let url = format!("{}/sip", base.replace("http://", "ws://"));
    block_on(async move {
        let open = || async {
            let mut req = url.as_str().into_client_request().unwrap();
            req.headers_mut()
                .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
            tokio_tungstenite::connect_async(req).await
        };
        // Too large: 64 KiB where 4 KiB is the most.
        let (mut big, _) = open().await.unwrap();
        let _ = big
            .send(Message::Text(
                format!("{}\r\n\r\n", "X".repeat(65_536)).into(),
            ))
            .await;
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match big.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "a 64 KiB frame ends the connection");

        // Two at once from one address, not three.
        let (mut a, _) = open().await.unwrap();
        let (_b, _) = open().await.unwrap();
        match open().await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 503);
            }
            other => panic!("a third connection: {other:?}"),
        }
        // `a` is read (its client answers the pings) and stays; `_b` is never read, so it
        // answers no ping and is closed after 3 s, which makes room again.
        let read_for = async {
            loop {
                match a.next().await {
                    Some(Ok(Message::Ping(_))) => {}
                    other => return other,
                }
            }
        };
        let a_ended = tokio::time::timeout(Duration::from_secs(5), read_for).await;
        assert!(
            a_ended.is_err(),
            "a connection that answers the pings stays: {a_ended:?}"
        );
        let again = tokio::time::timeout(Duration::from_secs(8), async {
            loop {
                if open().await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await;
        assert!(
            again.is_ok(),
            "the silent connection was closed, making room"
        );
    });
}
