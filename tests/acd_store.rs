//! The ACD's state in PostgreSQL (issue 24): what the ACD task writes is read back as it was
//! left, through a database outage nothing acknowledged is lost or reordered, and at start the
//! calls the last process left open go on the missed-call list.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in a test, a panic is a failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use hotline::acd::store::{self, Callback, Chosen, Entry, SavedAgent, Write};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::{TcpListener, TcpStream};

fn agent(id: u64, chosen: Chosen) -> SavedAgent {
    SavedAgent {
        agent: id,
        device: Some(format!("10{id:02}")),
        queues: vec!["general".into()],
        skills: vec![("mandarin".into(), 7)],
        chosen,
    }
}

fn entry(call_id: &str, callback: Option<&str>) -> Entry {
    Entry {
        call_id: call_id.into(),
        caller: "13812345678".into(),
        queue: "general".into(),
        priority: 0,
        skills: vec![],
        queued_at: Utc::now(),
        callback: callback.map(|n| Callback {
            number: n.into(),
            called: "12345".into(),
            tries: 1,
            next_try_at: Some(Utc::now()),
        }),
    }
}

/// Polls until `f` holds (up to 10 s).
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, f: impl Fn() -> F) {
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never {what}");
}

#[sqlx::test]
async fn what_the_acd_writes_is_read_back_as_it_was_left(db: PgPool) {
    let (tx, writer) = store::spawn_writer(db.clone());
    tx.send(Write::Agent(agent(1, Chosen::Available))).unwrap();
    tx.send(Write::Agent(agent(2, Chosen::Available))).unwrap();
    tx.send(Write::Agent(agent(2, Chosen::Paused("meal".into()))))
        .unwrap();
    tx.send(Write::Agent(agent(3, Chosen::Available))).unwrap();
    tx.send(Write::AgentGone(3)).unwrap();
    tx.send(Write::Entry(entry("waiting", None))).unwrap();
    tx.send(Write::Entry(entry("kept", Some("13900000000"))))
        .unwrap();
    tx.send(Write::Entry(entry("answered", None))).unwrap();
    tx.send(Write::EntryGone("answered".into())).unwrap();
    drop(tx);
    writer.await.unwrap();

    let saved = store::load(&db).await.unwrap();
    assert_eq!(saved.skipped, 0);
    assert_eq!(
        saved.agents,
        [
            agent(1, Chosen::Available),
            agent(2, Chosen::Paused("meal".into()))
        ]
    );
    // Only kept callbacks come back as places: the rest died with their calls.
    assert_eq!(saved.callbacks.len(), 1);
    let kept = &saved.callbacks[0];
    assert_eq!(kept.call_id, "kept");
    let cb = kept.callback.as_ref().unwrap();
    assert_eq!(
        (cb.number.as_str(), cb.called.as_str(), cb.tries),
        ("13900000000", "12345", 1)
    );
    assert!(cb.next_try_at.is_some());
}

#[sqlx::test]
async fn calls_left_open_go_on_the_missed_call_list_and_a_failed_callback_too(db: PgPool) {
    for (call_id, caller, ended) in [
        ("queued", "13600000001", false),
        ("ivr", "13600000002", false),
        ("done", "13600000003", true),
        ("kept", "13600000004", true),
    ] {
        sqlx::query(
            "INSERT INTO calls (call_id, caller, called, started_at, answered_at, ended_at,
                                end_reason, outcome)
             VALUES ($1, $2, '12345', now() - interval '1 minute', now() - interval '1 minute',
                     CASE WHEN $3 THEN now() END, CASE WHEN $3 THEN 'caller hung up' END,
                     CASE WHEN $3 THEN 'self_served' END)",
        )
        .bind(call_id)
        .bind(caller)
        .bind(ended)
        .execute(&db)
        .await
        .unwrap();
    }
    let (tx, writer) = store::spawn_writer(db.clone());
    tx.send(Write::Entry(Entry {
        queue: "backup".into(),
        ..entry("queued", None)
    }))
    .unwrap();
    tx.send(Write::Entry(entry("kept", Some("13600000004"))))
        .unwrap();
    drop(tx);
    writer.await.unwrap();

    assert_eq!(store::close_cut_off(&db).await.unwrap(), 2);
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT caller, queue, reason FROM missed_calls ORDER BY caller")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [
            ("13600000001".into(), "backup".into(), "cut_off".into()),
            ("13600000002".into(), "".into(), "cut_off".into()),
        ]
    );
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM calls WHERE ended_at IS NULL")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(open, 0);
    let outcomes: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT call_id, outcome FROM calls ORDER BY call_id")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(outcomes.contains(&("queued".into(), Some("cut_off".into()))));
    // The kept callback stays owed; a second start finds nothing more to close.
    assert_eq!(store::load(&db).await.unwrap().callbacks.len(), 1);
    assert_eq!(store::close_cut_off(&db).await.unwrap(), 0);

    // Its callbacks all failed: the caller's first call is on the list, the place is gone.
    let (tx, writer) = store::spawn_writer(db.clone());
    tx.send(Write::CallbackFailed {
        call_id: "kept".into(),
        queue: "general".into(),
        waited_secs: 600.0,
    })
    .unwrap();
    drop(tx);
    writer.await.unwrap();
    let (caller, reason): (String, String) =
        sqlx::query_as("SELECT caller, reason FROM missed_calls WHERE reason <> 'cut_off'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (caller.as_str(), reason.as_str()),
        ("13600000004", "callback_failed")
    );
    assert!(store::load(&db).await.unwrap().callbacks.is_empty());
}

/// A TCP relay to the database that can be cut: while it is down, connections through it are
/// refused and the ones open are dropped.
async fn relay(to: std::net::SocketAddr, up: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            if !up.load(Ordering::SeqCst) {
                continue; // dropped: the connection fails
            }
            let up = Arc::clone(&up);
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(to).await else {
                    return;
                };
                let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                tokio::pin!(copy);
                loop {
                    tokio::select! {
                        _ = &mut copy => return,
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {
                            if !up.load(Ordering::SeqCst) {
                                return; // the outage cuts it
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

#[sqlx::test]
async fn changes_made_during_a_database_outage_are_written_in_order_once_it_is_back(db: PgPool) {
    let opts = (*db.connect_options()).clone();
    let target: std::net::SocketAddr = format!("{}:{}", "127.0.0.1", opts.get_port())
        .parse()
        .unwrap();
    let up = Arc::new(AtomicBool::new(true));
    let port = relay(target, Arc::clone(&up)).await;
    let through = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(1))
        .connect_with(opts.host("127.0.0.1").port(port))
        .await
        .unwrap();
    let (tx, writer) = store::spawn_writer(through);
    tx.send(Write::Agent(agent(1, Chosen::Available))).unwrap();
    eventually("the first change written", || async {
        store::load(&db).await.unwrap().agents.len() == 1
    })
    .await;

    up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(Write::Agent(agent(1, Chosen::Paused("training".into()))))
        .unwrap();
    tx.send(Write::Entry(entry("kept", Some("13900000000"))))
        .unwrap();
    tx.send(Write::Agent(agent(1, Chosen::Paused("meal".into()))))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = store::load(&db).await.unwrap();
    assert_eq!(
        during.agents,
        [agent(1, Chosen::Available)],
        "nothing got through"
    );
    assert!(during.callbacks.is_empty());

    up.store(true, Ordering::SeqCst);
    eventually("the held changes written", || async {
        let s = store::load(&db).await.unwrap();
        s.callbacks.len() == 1 && s.agents == [agent(1, Chosen::Paused("meal".into()))]
    })
    .await;
    drop(tx);
    writer.await.unwrap();
}
