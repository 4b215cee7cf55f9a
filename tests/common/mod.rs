//! Helpers shared by the integration tests: running the real `hotline` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod answer;
pub mod baresip;
pub mod browser;
pub mod center;
pub mod sipp;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `hotline` binary with a clean environment: no DATABASE_URL, no HOTLINE_* overrides.
pub fn hotline() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotline"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("HOTLINE_") || k == "DATABASE_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Writes `samples` as an 8 kHz 16-bit mono WAV (a prompt, a caller's voice).
pub fn write_wav(path: &Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create the WAV");
    for s in samples {
        w.write_sample(*s).expect("write a sample");
    }
    w.finalize().expect("finish the WAV");
}

/// A directory the `postgres` system user can traverse (tempdirs are 0700), for when the
/// tests run as root and the embedded cluster runs as that user.
pub fn shared_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("hl-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Writes a config for a test node in `dir`: every port picked by the kernel, the embedded
/// cluster in `dir/pg`.
pub fn write_config(dir: &Path) -> PathBuf {
    write_config_with(dir, "")
}

/// [`write_config`] with extra `[sip]` keys.
pub fn write_config_with(dir: &Path, sip_extra: &str) -> PathBuf {
    let path = dir.join("hotline.toml");
    let text = format!(
        r#"[sip]
listen = "127.0.0.1"
udp_port = 0
tcp_port = 0
{sip_extra}
[rtp]
port_min = 42000
port_max = 42099
webrtc_port = 0
[http]
listen = "127.0.0.1:0"
[database]
embedded_dir = "{pg}"
[recordings]
dir = "{rec}"
[kb]
index_dir = "{kb}"
[node]
pid_file = "{pid}"
drain_secs = 10
"#,
        pid = dir.join("hotline.pid").display(),
        pg = dir.join("pg").display(),
        rec = dir.join("recordings").display(),
        kb = dir.join("kb-index").display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running `hotline serve` whose log lines are collected.
pub struct Node {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Node {
    pub fn start(config: &Path) -> Node {
        Self::start_with(hotline(), config)
    }

    /// Starts `cmd` (a [`hotline`] command with extra environment) as `serve`.
    pub fn start_with(mut cmd: Command, config: &Path) -> Node {
        let mut child = cmd
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hotline");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Node {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line containing {needle:?} within {limit:?}; log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// The HTTP base URL (`http://` or `https://`), from the "HTTP listening on" line.
    pub fn wait_http(&mut self) -> String {
        let seen = self
            .log
            .iter()
            .find(|l| l.contains("HTTP listening on http"))
            .cloned();
        let line = seen.unwrap_or_else(|| {
            self.wait_for_line("HTTP listening on http", Duration::from_secs(90))
        });
        let start = line.find("HTTP listening on ").expect("url") + "HTTP listening on ".len();
        line[start..]
            .split_whitespace()
            .next()
            .expect("url")
            .to_string()
    }

    /// Sends a signal and waits for the exit status.
    pub fn signal_and_wait(&mut self, sig: nix::sys::signal::Signal, limit: Duration) -> i32 {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).expect("signal");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Collect the rest of the log.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(line);
                }
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "hotline did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A failed test still stops the node in order, so no embedded server is left behind.
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The pid in a cluster's postmaster.pid, if the file exists.
pub fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

pub fn process_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// Runs a command with `stdin` as its standard input and returns its output (the password
/// prompts of `sip-account` and `user`).
pub fn run_with_stdin(mut cmd: Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// An IVR script that greets the caller (synthesised) and puts it in queue `general`.
pub const QUEUE_SCRIPT: &str = r##"
start = "hello"

[nodes.hello]
type = "play"
prompt = { text = "您好" }
next = "queue"

[nodes.queue]
type = "queue"
queue = "general"
"##;

/// The greeting, then the queue, which offers a callback (press 1) after 5 s; the caller who
/// takes it hears thanks and is hung up, keeping its place.
pub const CALLBACK_SCRIPT: &str = r##"
start = "hello"

[nodes.hello]
type = "play"
prompt = { text = "您好" }
next = "queue"

[nodes.queue]
type = "queue"
queue = "general"
callback = { after = 5, prompt = { text = "按1回拨" }, next = "thanks" }

[nodes.thanks]
type = "play"
prompt = { text = "稍后回电" }
next = "bye"

[nodes.bye]
type = "hangup"
"##;

/// A scratch database on the `DATABASE_URL` server, dropped when the guard goes.
pub struct TestDb {
    pub url: String,
    admin: String,
    name: String,
}

impl TestDb {
    pub fn create() -> TestDb {
        let admin = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL must name a PostgreSQL server (scripts/test.sh sets it)");
        let name = format!(
            "hotline_it_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        block_on(async {
            let pool = sqlx::PgPool::connect(&admin).await.expect("connect");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .expect("create database");
            pool.close().await;
        });
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        TestDb {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }

    /// Runs a query against the scratch database and returns its rows.
    pub fn rows(&self, sql: &str) -> Vec<sqlx::postgres::PgRow> {
        let (url, sql) = (self.url.clone(), sql.to_string());
        block_on(async move {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .expect("query");
            pool.close().await;
            rows
        })
    }

    /// Runs SQL against the scratch database.
    pub fn execute(&self, sql: String) {
        let url = self.url.clone();
        block_on(async move {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .expect("execute");
            pool.close().await;
        });
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        block_on(async move {
            if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        });
    }
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A node serving SIP on loopback, on a scratch database of the `DATABASE_URL` server.
pub struct SipNode {
    pub node: Node,
    pub udp: std::net::SocketAddr,
    pub tcp: std::net::SocketAddr,
    pub db: TestDb,
    config: PathBuf,
    env: Vec<(String, std::ffi::OsString)>,
    _dir: tempfile::TempDir,
}

impl SipNode {
    /// Kills the node (SIGKILL, as a crash would) and starts it again on the same
    /// configuration and database; SIP comes back on new ports (HTTP on the same one only
    /// when the environment fixed it).
    pub fn restart(&mut self) {
        let _ = self.node.child.kill();
        let _ = self.node.child.wait();
        let (node, udp, tcp) = spawn_sip_node(&self.config, &self.db, &self.env);
        self.node = node;
        self.udp = udp;
        self.tcp = tcp;
    }

    /// The node's configuration file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Kills the node (SIGKILL, as a crash would) without starting it again.
    pub fn kill(&mut self) {
        let _ = self.node.child.kill();
        let _ = self.node.child.wait();
    }

    /// Starts the node again after it has stopped by itself (a drain), on the same
    /// configuration and database.
    pub fn start_again(&mut self) {
        let _ = self.node.child.wait();
        let (node, udp, tcp) = spawn_sip_node(&self.config, &self.db, &self.env);
        self.node = node;
        self.udp = udp;
        self.tcp = tcp;
    }

    /// `columns` of the calls that have ended, oldest first, waiting up to 10 s for `n` of
    /// them (fewer when they do not come).
    pub fn ended_calls(&self, n: usize, columns: &str) -> Vec<sqlx::postgres::PgRow> {
        let mut rows = Vec::new();
        for _ in 0..100 {
            rows = self.db.rows(&format!(
                "SELECT {columns} FROM calls WHERE ended_at IS NOT NULL ORDER BY id"
            ));
            if rows.len() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        rows
    }
}

/// Starts a node with extra `[sip]` configuration and waits until SIP listens.
pub fn start_sip_node(sip_extra: &str) -> SipNode {
    start_sip_node_env(sip_extra, &[])
}

/// [`start_sip_node`] with extra environment (`HOTLINE_IVR__SCRIPT`, ...).
pub fn start_sip_node_env(sip_extra: &str, env: &[(&str, &std::ffi::OsStr)]) -> SipNode {
    let db = TestDb::create();
    let dir = shared_tempdir();
    let config = write_config_with(dir.path(), sip_extra);
    let env: Vec<(String, std::ffi::OsString)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_os_string()))
        .collect();
    let (node, udp, tcp) = spawn_sip_node(&config, &db, &env);
    SipNode {
        node,
        udp,
        tcp,
        db,
        config,
        env,
        _dir: dir,
    }
}

fn spawn_sip_node(
    config: &Path,
    db: &TestDb,
    env: &[(String, std::ffi::OsString)],
) -> (Node, std::net::SocketAddr, std::net::SocketAddr) {
    let mut cmd = hotline();
    cmd.env("HOTLINE_DATABASE__URL", &db.url);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut node = Node::start_with(cmd, config);
    let line = node.wait_for_line("SIP listening on", Duration::from_secs(60));
    let addr_after = |key: &str| -> std::net::SocketAddr {
        let start = line.find(key).expect("address in the log") + key.len();
        line[start..]
            .split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .expect("a socket address")
    };
    let (udp, tcp) = (addr_after("udp:"), addr_after("tcp:"));
    (node, udp, tcp)
}
