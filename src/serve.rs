//! Start-up and shutdown of a whole node: database (external or embedded), migrations, the
//! HTTP server, and an orderly stop on SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use sqlx::PgPool;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::acd::service::Offer;
use crate::calls::recording::{Recordings, repair_all};
use crate::calls::{Calls, CallsConfig, Control, record};
use crate::config::Config;
use crate::embedded::EmbeddedPostgres;
use crate::engine::{self, CallHandler, Credentials, EngineHandle, RefuseCalls};
use crate::ivr::script::Context as IvrContext;
use crate::ivr::store::ScriptStore;
use crate::ivr::tts::Tts;
use crate::{db, http, telemetry};

/// The database a node runs on, and the embedded server to stop when it is ours.
pub struct Database {
    /// The pool.
    pub pool: PgPool,
    /// The private cluster, when no external server is configured.
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects to the configured server, or starts the embedded one; then migrates.
    pub async fn open(cfg: &Config) -> anyhow::Result<Database> {
        let (opts, embedded) = match db::external_url(cfg.database.url.as_deref()) {
            Some(url) => {
                let opts = url
                    .parse::<sqlx::postgres::PgConnectOptions>()
                    .context("database.url / DATABASE_URL is not a valid PostgreSQL URL")?;
                tracing::info!(
                    url = %crate::config::redact_url_password(&url),
                    "using the configured PostgreSQL server"
                );
                (opts, None)
            }
            None => {
                let pg = EmbeddedPostgres::start(&cfg.database.embedded_dir).await?;
                (pg.connect_options(), Some(pg))
            }
        };
        let pool = match db::connect(opts, cfg.database.max_connections).await {
            Ok(p) => p,
            Err(e) => {
                if let Some(pg) = embedded {
                    let _ = pg.stop().await;
                }
                return Err(e).context("cannot connect to PostgreSQL");
            }
        };
        let mut this = Database { pool, embedded };
        if let Err(e) = db::migrate(&this.pool).await {
            this.close().await;
            return Err(e).context("applying migrations failed");
        }
        Ok(this)
    }

    /// Closes the pool, then stops the embedded server if there is one.
    pub async fn close(&mut self) {
        self.pool.close().await;
        if let Some(pg) = self.embedded.take()
            && let Err(e) = pg.stop().await
        {
            tracing::error!(error = %e, "stopping the embedded PostgreSQL");
        }
    }
}

/// Loads `ivr.script`, if configured, and reloads it on SIGHUP until `shutdown`: new calls get
/// the new version, calls in progress keep theirs, and a version that fails validation is
/// refused with every problem logged while the one in force stays.
fn ivr_store(
    cfg: &Config,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<(Arc<ScriptStore>, tokio::task::JoinHandle<()>)>> {
    let Some(path) = &cfg.ivr.script else {
        return Ok(None);
    };
    let ctx = IvrContext {
        queues: cfg.ivr.queue_names(),
        tts: Some(Tts::for_script(path, cfg.ivr.tts_command.as_deref())),
    };
    let store = ScriptStore::load(path, ctx).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid IVR script:\n{}", lines.join("\n"))
    })?;
    let store = Arc::new(store);
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tracing::info!(
        script = %path.display(),
        nodes = store.current().nodes.len(),
        "IVR script loaded; SIGHUP reloads it"
    );
    let s = Arc::clone(&store);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                got = hup.recv() => {
                    if got.is_none() {
                        break;
                    }
                    if let Err(problems) = s.reload() {
                        for p in &problems {
                            tracing::error!("IVR script reload refused: {p}");
                        }
                        tracing::error!(
                            problems = problems.len(),
                            "IVR script reload refused; the script in force stays"
                        );
                    }
                }
            }
        }
    });
    Ok(Some((store, task)))
}

/// Said when a caller asks the IVR for a self-service that is not connected yet.
const UNAVAILABLE_TEXT: &str = "抱歉，这项自助服务暂时无法使用。";

/// The ACD's typed offer channel, wired to the call handler on the engine task: each
/// [`Offer`] goes on as [`Control::Offer`], in order.
fn offers_to(engine: EngineHandle<Control>, shutdown: CancellationToken) -> mpsc::Sender<Offer> {
    let (tx, mut rx) = mpsc::channel::<Offer>(1024);
    tokio::spawn(async move {
        loop {
            let offer = tokio::select! {
                _ = shutdown.cancelled() => return,
                o = rx.recv() => match o {
                    Some(o) => o,
                    None => return,
                },
            };
            if !engine.tell(Control::Offer(offer)).await {
                return;
            }
        }
    });
    tx
}

/// The node's call handler: [`Calls`], or [`RefuseCalls`] without an IVR script.
type Handler = Box<dyn CallHandler<Msg = Control>>;

/// The handler for calls: the IVR when a script is configured (with the receiver of its call
/// records), else a clean refusal (480), since nothing could take the call.
fn call_handler(
    cfg: &Config,
    scripts: Option<Arc<ScriptStore>>,
    db: &sqlx::PgPool,
    acd: &crate::acd::service::AcdHandle,
    webrtc: Option<Arc<crate::engine::webrtc::Gateway>>,
    node: Arc<crate::node::NodeState>,
) -> anyhow::Result<(Handler, Option<mpsc::UnboundedReceiver<record::CallEvent>>)> {
    let Some(scripts) = scripts else {
        tracing::warn!("no `ivr.script` configured: calls are refused (480)");
        return Ok((Box::new(RefuseCalls::<Control>::default()), None));
    };
    let calendar = cfg
        .tickets
        .load_calendar()
        .context("the working-day calendar (tickets.calendar)")?;
    let tts = cfg
        .ivr
        .script
        .as_deref()
        .map(|p| Tts::for_script(p, cfg.ivr.tts_command.as_deref()));
    let unavailable: Vec<Arc<hotline_sip::media::player::Prompt>> = tts
        .clone()
        .and_then(|tts| match tts.speak(UNAVAILABLE_TEXT) {
            Ok(wav) => hotline_sip::media::player::Prompt::load(&wav)
                .map_err(|e| tracing::warn!(error = %e, "the self-service notice"))
                .ok(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot synthesise the self-service notice");
                None
            }
        })
        .map(Arc::new)
        .into_iter()
        .collect();
    let recordings = if cfg.recordings.enabled {
        let r = Recordings::start(
            &cfg.recordings.dir,
            cfg.recordings.min_free_mb.saturating_mul(1 << 20),
        )
        .context("starting the recording thread")?;
        Some(Arc::new(r))
    } else {
        tracing::warn!("recordings.enabled is false: calls are not recorded");
        None
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let calls = Calls::new(
        CallsConfig {
            bind: cfg.sip.listen,
            announce: cfg.rtp.public_address.unwrap_or(cfg.sip.listen),
            port_min: cfg.rtp.port_min.0,
            port_max: cfg.rtp.port_max.0,
            inactivity: (cfg.rtp.inactivity_timeout_secs > 0)
                .then(|| std::time::Duration::from_secs(cfg.rtp.inactivity_timeout_secs)),
            workers: match cfg.rtp.media_threads {
                0 => std::thread::available_parallelism()
                    .map_or(1, |n| n.get().saturating_sub(1).max(1)),
                n => n,
            },
            realtime: cfg.rtp.realtime,
            callback_route: (!cfg.acd.callback_route.is_empty())
                .then(|| cfg.acd.callback_route.clone()),
            callback_numbers: cfg.acd.callback_numbers().context("acd.callback_numbers")?,
            emergency_routes: cfg.acd.emergency_routes.clone(),
            trunks: cfg.sip.trunk_nets().map_err(anyhow::Error::msg)?,
            max_calls_per_source: cfg.sip.max_calls_per_source,
        },
        scripts,
        Arc::new(calendar),
        tx,
        recordings,
        unavailable.clone(),
    );
    let calls = match tts {
        Some(tts) => calls.with_lookups(crate::calls::lookup::spawn(db.clone(), tts, unavailable)),
        None => calls,
    }
    .with_acd(acd.clone())
    .with_node(node);
    let calls = match webrtc {
        Some(gw) => calls.with_webrtc(gw),
        None => calls,
    };
    Ok((Box::new(calls), Some(rx)))
}

/// The stop signals: `first` is cancelled on the first SIGINT or SIGTERM, `second` on the
/// next one. Installed before anything starts, so a signal during start-up still leads to an
/// orderly stop.
#[derive(Debug, Clone)]
pub struct StopSignals {
    /// A stop was asked for: `serve` drains, every other command stops.
    pub first: CancellationToken,
    /// Asked again: `serve` stops at once, whatever calls are left.
    pub second: CancellationToken,
}

/// Installs the SIGINT and SIGTERM handlers.
pub fn stop_signals() -> anyhow::Result<StopSignals> {
    let first = CancellationToken::new();
    let second = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let (f, s) = (first.clone(), second.clone());
    tokio::spawn(async move {
        for token in [f, s] {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "stop requested");
            token.cancel();
        }
    });
    Ok(StopSignals { first, second })
}

/// What the drain needs of a node that has started: its ACD and its call handler.
type Started = Arc<std::sync::OnceLock<(crate::acd::service::AcdHandle, EngineHandle<Control>)>>;

/// Waits for the first stop signal, then drains: new calls are refused (503 with
/// Retry-After) and `/ready` answers 503, kept callbacks stay owed, and the calls in progress
/// may end for `drain_secs` at most (a second signal cuts it short); then `shutdown`. A signal
/// before the node has started stops it at once.
async fn drain_then_stop(
    signals: StopSignals,
    node: Arc<crate::node::NodeState>,
    started: Started,
    drain_secs: u64,
    shutdown: CancellationToken,
) {
    tokio::select! {
        _ = signals.first.cancelled() => {}
        _ = shutdown.cancelled() => return,
    }
    if let (Some((acd, engine)), true) = (started.get(), drain_secs > 0) {
        node.start_draining();
        acd.send(crate::acd::service::Command::Drain);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(drain_secs);
        let mut said = usize::MAX;
        loop {
            engine.tell(Control::Count).await;
            let live = node.live_calls();
            if live == 0 {
                tracing::info!("drained: no call in progress");
                break;
            }
            if live != said {
                tracing::info!(
                    calls = live,
                    "draining: new calls are refused; waiting for {live} call(s) in progress"
                );
                said = live;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(calls = live, "drain limit (node.drain_secs) reached: {live} call(s) cut");
                    break;
                }
                _ = signals.second.cancelled() => {
                    tracing::warn!(calls = live, "stopping at once: {live} call(s) cut");
                    break;
                }
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
    shutdown.cancel();
}

/// Runs a node until `shutdown` is cancelled, then stops it in order: stop accepting, finish
/// in-flight requests, close the database, stop the embedded server.
pub async fn run(cfg: Config, signals: StopSignals) -> anyhow::Result<()> {
    let started = Arc::new(Instant::now());
    let shutdown = CancellationToken::new();
    let node = Arc::new(crate::node::NodeState::new(cfg.node.retry_after_secs));
    let running: Started = Arc::default();
    let drainer = tokio::spawn(drain_then_stop(
        signals,
        Arc::clone(&node),
        Arc::clone(&running),
        cfg.node.drain_secs,
        shutdown.clone(),
    ));
    let result = run_node(cfg, node, running, started, shutdown.clone()).await;
    shutdown.cancel();
    let _ = drainer.await;
    result
}

/// [`run`] once the drain watcher and the pid file are in place.
async fn run_node(
    cfg: Config,
    node: Arc<crate::node::NodeState>,
    running: Started,
    started: Arc<Instant>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = telemetry::prometheus();
    let tickets = crate::tickets::store::Settings::from_config(&cfg.tickets)
        .context("loading the working-day calendar (tickets.calendar)")?;
    for (year, source) in tickets.calendar.coverage() {
        tracing::info!(year, source, "working-day calendar");
    }
    if let Some(year) = crate::china::calendar::missing_soon(&tickets.calendar, chrono::Utc::now())
    {
        tracing::warn!(
            year,
            "the working-day calendar has no {year} schedule yet: deadlines reaching into {year} \
             will be refused until an administrator adds the State Council's notice \
             (tickets.calendar)"
        );
    }
    // The certificate first: a bad one stops the start before anything else is up.
    let certs = if cfg.http.tls.enabled(cfg.http.listen) {
        Some(
            http::tls::Certificates::load(&cfg.http.tls, cfg.http.listen)
                .map_err(|e| anyhow::anyhow!("`http.tls`: {e}"))?,
        )
    } else {
        None
    };
    let mut database = tokio::select! {
        d = Database::open(&cfg) => d?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let listener = match tokio::net::TcpListener::bind(cfg.http.listen).await {
        Ok(l) => l,
        Err(e) => {
            database.close().await;
            return Err(e)
                .with_context(|| format!("cannot listen on http.listen {}", cfg.http.listen));
        }
    };
    let addr = listener.local_addr()?;
    let kb = match crate::kb::service::Kb::open(
        database.pool.clone(),
        Some(cfg.kb.index_dir.clone()),
        cfg.kb.require_approval,
    )
    .await
    {
        Ok(kb) => kb,
        Err(e) => {
            database.close().await;
            return Err(e).context("opening the knowledge base");
        }
    };
    let kb_follower = kb.spawn_follower(shutdown.clone());
    // Hot topics: the words of new tickets, counted a few seconds after filing.
    let term_indexer = crate::tickets::terms::spawn(
        database.pool.clone(),
        std::time::Duration::from_secs(5),
        shutdown.clone(),
    );
    let queue_names = if cfg.ivr.queues.is_empty() {
        vec!["general".to_string()]
    } else {
        cfg.ivr.queues.clone()
    };
    let (history, history_writer) =
        crate::acd::history::spawn(database.pool.clone(), shutdown.clone());
    let (store, store_writer) = crate::acd::store::spawn_writer(database.pool.clone());
    let acd = crate::acd::service::spawn(
        queue_names.iter().map(|q| cfg.acd.queue(q)).collect(),
        crate::acd::service::AcdSettings {
            history: Some(history),
            store: Some(store),
            ..cfg.acd.settings()
        },
        shutdown.clone(),
    );
    let creds = Arc::new(Credentials::default());
    let accounts = match creds.reload(&database.pool, &cfg.sip.realm).await {
        Ok(n) => n,
        Err(e) => {
            shutdown.cancel();
            let _ = kb_follower.await;
            database.close().await;
            return Err(e).context("reading SIP accounts");
        }
    };
    let reloader = creds.spawn_reloader(
        database.pool.clone(),
        cfg.sip.realm.clone(),
        shutdown.clone(),
    );
    let ivr = match ivr_store(&cfg, shutdown.clone()) {
        Ok(x) => x,
        Err(e) => {
            shutdown.cancel();
            let _ = reloader.await;
            database.close().await;
            return Err(e);
        }
    };
    // Recordings a crash left unfinished are made whole before new calls are taken, and the
    // calls they belong to are closed as cut off.
    // Call records the last run spooled go in first: a call whose end is there was not cut.
    record::replay_spool(&database.pool, &cfg.recordings.dir).await;
    let repaired = repair_all(&cfg.recordings.dir);
    if !repaired.is_empty() {
        let closed = record::close_cut_off(&database.pool, &repaired).await;
        tracing::warn!(
            recordings = repaired.len(),
            calls = closed,
            "recordings of calls cut off by the last stop repaired"
        );
    }
    // Every call still open was cut by the last stop: its caller goes on the missed-call list.
    match crate::acd::store::close_cut_off(&database.pool).await {
        Ok(0) => {}
        Ok(n) => {
            node.add_restored(|r| r.missed = n as usize);
            tracing::warn!(
                calls = n,
                "calls cut off by the last stop are on the missed-call list"
            );
        }
        Err(e) => tracing::error!(error = %e, "cannot list the calls the last stop cut off"),
    }
    // Browser agents' media: one UDP port for all of them.
    let webrtc = match crate::engine::webrtc::Gateway::start(
        std::net::SocketAddr::new(cfg.sip.listen, cfg.rtp.webrtc_port.0),
        cfg.rtp.public_address.unwrap_or(cfg.sip.listen),
        shutdown.clone(),
    )
    .await
    {
        Ok(gw) => {
            tracing::info!(addr = %gw.addr(), "WebRTC media on udp:{}", gw.addr());
            Some(gw)
        }
        Err(e) => {
            // Callers and SIP phones do not need it: the hotline answers without browsers.
            tracing::error!(error = %e, "browser agents have no media: {e:#}");
            None
        }
    };
    let (handler, records) = match call_handler(
        &cfg,
        ivr.as_ref().map(|(s, _)| Arc::clone(s)),
        &database.pool,
        &acd,
        webrtc,
        Arc::clone(&node),
    ) {
        Ok(x) => x,
        Err(e) => {
            shutdown.cancel();
            database.close().await;
            return Err(e);
        }
    };
    let record_writer = records
        .map(|rx| record::spawn_writer(database.pool.clone(), rx, Some(&cfg.recordings.dir)));
    // Phones registered before a restart are reachable at once.
    let restore = match engine::bindings::load(&database.pool, chrono::Utc::now()).await {
        Ok((saved, skipped)) => {
            node.add_restored(|r| {
                r.bindings = saved.len();
                r.skipped += skipped;
            });
            saved
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the saved SIP registrations: phones must register again");
            Vec::new()
        }
    };
    let (bindings_tx, bindings_rx) = mpsc::unbounded_channel();
    let bindings_writer = engine::bindings::spawn_writer(database.pool.clone(), bindings_rx);
    let registrations = engine::Registrations {
        restore,
        changed: Some(bindings_tx),
    };
    let (sip, sip_task) = match engine::start_with_registrations(
        &cfg.sip,
        creds,
        handler,
        registrations,
        shutdown.clone(),
    )
    .await
    {
        Ok(x) => x,
        Err(e) => {
            shutdown.cancel();
            database.close().await;
            return Err(e);
        }
    };
    acd.send(crate::acd::service::Command::Attach(offers_to(
        sip.engine.clone(),
        shutdown.clone(),
    )));
    // Agents and kept callbacks of the last run come back.
    match crate::acd::store::load(&database.pool).await {
        Ok(saved) => {
            let skipped = saved.skipped;
            let registered = sip.engine.registered().await.unwrap_or_default();
            let (tx, rx) = tokio::sync::oneshot::channel();
            acd.send(crate::acd::service::Command::Restore {
                saved,
                registered,
                reply: tx,
            });
            let (agents, callbacks) = rx.await.unwrap_or_default();
            node.add_restored(|r| {
                r.agents = agents;
                r.callbacks = callbacks;
                r.skipped += skipped;
            });
            let r = node.restored();
            if r != crate::node::Restored::default() {
                tracing::info!(
                    bindings = r.bindings,
                    agents = r.agents,
                    callbacks = r.callbacks,
                    missed = r.missed,
                    skipped = r.skipped,
                    "restored from the last run"
                );
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the saved ACD state: agents must log in again")
        }
    }
    let _ = running.set((acd.clone(), sip.engine.clone()));
    // Written once the node runs (`hotline drain` reads it); removed when it stops.
    let _pid = match crate::node::PidFile::write(&cfg.node.pid_file) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!("{e}: `hotline drain` cannot find this node");
            None
        }
    };
    // Frequent callers a supervisor sent to a dedicated queue keep going there.
    match crate::acd::frequent::routes(&database.pool).await {
        Ok(routes) => {
            for r in routes {
                acd.send(crate::acd::service::Command::Reroute {
                    caller: r.caller,
                    queue: Some(r.queue),
                });
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the frequent callers' routes"),
    }
    // The wall board's 24-hour connection rate goes on from the call records.
    match recent_calls(&database.pool).await {
        Ok(recent) => {
            acd.send(crate::acd::service::Command::Recent(recent));
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the last 24 hours of calls"),
    }
    tracing::info!(udp = %sip.udp, tcp = %sip.tcp, accounts, "SIP listening on udp:{} tcp:{}", sip.udp, sip.tcp);
    let scheme = if certs.is_some() { "https" } else { "http" };
    tracing::info!(%addr, "HTTP listening on {scheme}://{addr}");
    let state = http::AppState {
        db: database.pool.clone(),
        metrics,
        started,
        ivr: ivr.as_ref().map(|(s, _)| Arc::clone(s)),
        admin_token: cfg.http.admin_token.as_deref().map(Arc::from),
        engine: Some(sip.engine.clone()),
        tickets: Arc::new(tickets),
        kb: Some(kb),
        acd: Some(acd),
        node,
        logins: Arc::default(),
        frequent_calls_per_hour: cfg.acd.frequent_calls_per_hour,
    };
    if !cfg.http.web_dir.join("agent/index.html").is_file() {
        tracing::warn!(
            web_dir = %cfg.http.web_dir.display(),
            "the agent desktop is not built (run scripts/web.sh): /agent/ answers 404"
        );
    }
    let app = http::app(state)
        .merge(http::sip_ws::routes(&cfg.sip, sip.engine.clone()))
        .merge(http::web::routes(cfg.http.web_dir.clone()));
    let result = match certs {
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await
        }
        Some(certs) => {
            serve_https(listener, app, certs, &cfg.http.tls, addr, shutdown.clone()).await
        }
    };
    tracing::info!("HTTP server stopped");
    shutdown.cancel();
    let _ = sip_task.await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), bindings_writer).await;
    // The handler (and with it every call's record sender) is gone with the engine task, so
    // the writer ends once the last media task has handed in its record.
    if let Some(w) = record_writer {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), w).await;
    }
    let _ = reloader.await;
    let _ = kb_follower.await;
    let _ = term_indexer.await;
    let _ = history_writer.await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), store_writer).await;
    if let Some((_, task)) = ivr {
        let _ = task.await;
    }
    database.close().await;
    result.context("HTTP server failed")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Calls answered or abandoned in the last 24 hours: (seconds ago, answered).
async fn recent_calls(db: &sqlx::PgPool) -> Result<Vec<(u64, bool)>, sqlx::Error> {
    let rows: Vec<(f64, bool)> = sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM now() - COALESCE(agent_answered_at, ended_at))::float8,
                outcome = 'answered'
           FROM calls
          WHERE outcome IN ('answered', 'abandoned')
            AND COALESCE(agent_answered_at, ended_at) > now() - interval '24 hours'",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(ago, answered)| (ago.max(0.0) as u64, answered))
        .collect())
}

/// Serves `app` over TLS on `listener` (with HSTS), reloads the certificate on SIGHUP, and
/// answers `http.tls.redirect_from` with redirects to it, until `shutdown`.
async fn serve_https(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    certs: std::sync::Arc<http::tls::Certificates>,
    tls: &http::tls::TlsConfig,
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    certs.announce();
    let config = certs.server_config().map_err(std::io::Error::other)?;
    let reloader = http::tls::spawn_reloader(certs, shutdown.clone())?;
    let redirect = match tls.redirect_from {
        Some(from) => {
            let plain = tokio::net::TcpListener::bind(from).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("http.tls.redirect_from {from}: {e}"))
            })?;
            let from = plain.local_addr()?;
            tracing::info!(%from, "plain HTTP on {from} redirects to HTTPS");
            let to = http::redirect_to_https(addr.port());
            Some(tokio::spawn(
                axum::serve(plain, to)
                    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                    .into_future(),
            ))
        }
        None => None,
    };
    let app = http::with_hsts(app, tls.hsts_max_age_secs);
    let listener = http::tls::TlsListener::new(
        listener,
        config,
        std::time::Duration::from_secs(tls.handshake_timeout_secs),
        shutdown.clone(),
    )?
    .tap_io(|_| {});
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await;
    let _ = reloader.await;
    if let Some(r) = redirect {
        let _ = r.await;
    }
    result
}
