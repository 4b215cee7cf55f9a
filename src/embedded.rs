//! The embedded default database: a private PostgreSQL cluster in a project-local directory.
//!
//! When no external server is configured, `hotline serve` (and `migrate`) run the machine's own
//! PostgreSQL binaries on a data directory of ours: `initdb` once, then `postgres` listening
//! only on a Unix socket inside that directory (no TCP port, so it never collides with a system
//! server). The cluster is stopped with a fast shutdown when Hotline exits.
//!
//! Layout of `database.embedded_dir`: `pgdata/` (the cluster), `run/` (the socket),
//! `postgres.log` (the server's own log).
//!
//! PostgreSQL refuses to run as root. When Hotline runs as root, the cluster's files belong to
//! the `postgres` system user (created by Debian's postgresql package) and the server runs as
//! that user.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::process::{Child, Command};

/// Name of the database Hotline uses inside the embedded cluster.
pub const DATABASE: &str = "hotline";
/// Superuser created by `initdb`.
const SUPERUSER: &str = "postgres";
/// The port only names the socket file (`.s.PGSQL.<port>`); nothing listens on TCP.
const SOCKET_PORT: u16 = 5432;
/// Written beside the cluster: the pid of the Hotline that started the server.
const OWNER_FILE: &str = "owner.pid";
/// What a Unix socket path may hold (`sun_path` is 108 bytes with its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Why the embedded cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The PostgreSQL server programs are not installed.
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found under /usr/lib/postgresql/*/bin or on PATH. \
         Install them (Debian: `apt-get install postgresql`), or set database.url / DATABASE_URL to an existing server"
    )]
    BinariesMissing,
    /// Running as root without a `postgres` user to run the server as.
    #[error(
        "running as root, and PostgreSQL refuses to run as root; there is no `postgres` user to run it as. \
         Install Debian's postgresql package (it creates the user) or run Hotline as an ordinary user"
    )]
    NoServiceUser,
    /// The directory cannot be used.
    #[error("embedded database directory {dir}: {why}")]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A server started by someone else is running on the directory.
    #[error(
        "embedded database directory {dir} is in use by a running PostgreSQL (pid {pid}) that another process started; \
         stop that process, or stop the server with `pg_ctl -D {dir}/pgdata stop`"
    )]
    InUse {
        /// The directory.
        dir: PathBuf,
        /// The running postmaster.
        pid: i32,
    },
    /// `initdb` or `postgres` failed.
    #[error("{what} failed: {detail}")]
    Server {
        /// Which step.
        what: &'static str,
        /// What the server said (the tail of its output or log).
        detail: String,
    },
    /// An I/O error around the server's files or process.
    #[error("embedded database: {0}")]
    Io(#[from] std::io::Error),
}

/// A running private cluster. Call [`EmbeddedPostgres::stop`] to shut it down cleanly; dropping
/// it without stopping still asks the server for a fast shutdown, without waiting.
pub struct EmbeddedPostgres {
    child: Option<Child>,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
}

/// The user the server runs as: ourselves, or `postgres` when we are root.
#[derive(Clone, Copy)]
struct RunAs {
    ids: Option<(Uid, Gid)>,
}

impl RunAs {
    fn detect() -> Result<RunAs, EmbeddedError> {
        if !Uid::effective().is_root() {
            return Ok(RunAs { ids: None });
        }
        match User::from_name(SUPERUSER) {
            Ok(Some(u)) => Ok(RunAs {
                ids: Some((u.uid, u.gid)),
            }),
            _ => Err(EmbeddedError::NoServiceUser),
        }
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        cmd
    }

    fn own(&self, path: &Path) -> Result<(), EmbeddedError> {
        if let Some((uid, gid)) = self.ids {
            nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|e| {
                EmbeddedError::Directory {
                    dir: path.to_path_buf(),
                    why: format!("cannot give it to the postgres user: {e}"),
                }
            })?;
        }
        Ok(())
    }

    /// Every ancestor of `dir` must be searchable by the server's user.
    fn check_reachable(&self, dir: &Path) -> Result<(), EmbeddedError> {
        use std::os::unix::fs::MetadataExt;
        let Some((uid, gid)) = self.ids else {
            return Ok(());
        };
        for anc in dir.ancestors().skip(1) {
            let md = std::fs::metadata(anc)?;
            let mode = md.mode();
            let ok = if md.uid() == uid.as_raw() {
                mode & 0o100 != 0
            } else if md.gid() == gid.as_raw() {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            };
            if !ok {
                return Err(EmbeddedError::Directory {
                    dir: dir.to_path_buf(),
                    why: format!(
                        "the postgres user cannot reach it because {} is not searchable by it \
                         (chmod o+x it, or choose another database.embedded_dir)",
                        anc.display()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Finds `initdb` and `postgres`: the newest /usr/lib/postgresql/N/bin, else PATH.
pub fn find_binaries() -> Option<PathBuf> {
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file() && bin.join("postgres").is_file())
        .collect();
    versioned.sort();
    if let Some((_, bin)) = versioned.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
    })
}

impl EmbeddedPostgres {
    /// Initialises the cluster if needed, starts the server, waits until it accepts
    /// connections and makes sure the `hotline` database exists.
    pub async fn start(dir: &Path) -> Result<EmbeddedPostgres, EmbeddedError> {
        let bin = find_binaries().ok_or(EmbeddedError::BinariesMissing)?;
        let run_as = RunAs::detect()?;
        std::fs::create_dir_all(dir).map_err(|e| EmbeddedError::Directory {
            dir: dir.to_path_buf(),
            why: format!("cannot create it: {e}"),
        })?;
        let dir = dir.canonicalize()?;
        run_as.check_reachable(&dir)?;
        let data_dir = dir.join("pgdata");
        let socket_dir = dir.join("run");
        let log_path = dir.join("postgres.log");
        let socket_file_len = socket_dir.as_os_str().len() + "/.s.PGSQL.5432".len();
        if socket_file_len > MAX_SOCKET_PATH {
            return Err(EmbeddedError::Directory {
                dir,
                why: format!(
                    "its socket path would be {socket_file_len} bytes, over the {MAX_SOCKET_PATH} a Unix socket allows; choose a shorter database.embedded_dir"
                ),
            });
        }
        std::fs::create_dir_all(&socket_dir)?;
        run_as.own(&socket_dir)?;

        if !data_dir.join("PG_VERSION").is_file() {
            if data_dir.exists() && std::fs::read_dir(&data_dir)?.next().is_some() {
                return Err(EmbeddedError::Directory {
                    dir: data_dir,
                    why: "not empty but not a PostgreSQL cluster (no PG_VERSION); move it away"
                        .into(),
                });
            }
            std::fs::create_dir_all(&data_dir)?;
            run_as.own(&data_dir)?;
            tracing::info!(dir = %data_dir.display(), "initialising the embedded PostgreSQL cluster");
            let out = run_as
                .command(&bin.join("initdb"))
                .arg("-D")
                .arg(&data_dir)
                .args([
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ])
                .stdin(Stdio::null())
                .output()
                .await?;
            if !out.status.success() {
                return Err(EmbeddedError::Server {
                    what: "initdb",
                    detail: tail(&String::from_utf8_lossy(&out.stderr), 20),
                });
            }
        } else {
            check_version(&bin, &data_dir)?;
        }
        stop_orphan(&dir, &data_dir).await?;

        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut cmd = run_as.command(&bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data_dir)
            .arg("-k")
            .arg(&socket_dir)
            .arg("-p")
            .arg(SOCKET_PORT.to_string())
            .args([
                "-c",
                "listen_addresses=",
                "-c",
                "unix_socket_permissions=0700",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C at the terminal reaches Hotline, which then stops
            // the server in order, after its own connections are closed.
            .process_group(0);
        let child = cmd.spawn()?;
        std::fs::write(dir.join(OWNER_FILE), format!("{}\n", std::process::id()))?;
        let mut pg = EmbeddedPostgres {
            child: Some(child),
            data_dir,
            socket_dir,
            log_path,
        };
        pg.wait_accepting(Duration::from_secs(60)).await?;
        pg.ensure_database().await?;
        tracing::info!(socket = %pg.socket_dir.display(), "embedded PostgreSQL is up");
        Ok(pg)
    }

    /// Connection options for the `hotline` database over the private socket.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options_for(DATABASE)
    }

    fn options_for(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.socket_dir.to_string_lossy())
            .port(SOCKET_PORT)
            .username(SUPERUSER)
            .database(database)
            .log_statements(tracing::log::LevelFilter::Trace)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    async fn wait_accepting(&mut self, limit: Duration) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(EmbeddedError::Server {
                    what: "postgres",
                    detail: format!("exited with {status} at start-up; {}", self.log_tail()),
                });
            }
            match self.options_for("postgres").connect().await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(EmbeddedError::Server {
                        what: "postgres",
                        detail: format!(
                            "not accepting connections after {} s ({e}); {}",
                            limit.as_secs(),
                            self.log_tail()
                        ),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let server_err = |e: sqlx::Error| EmbeddedError::Server {
            what: "creating the hotline database",
            detail: e.to_string(),
        };
        let mut conn = self
            .options_for("postgres")
            .connect()
            .await
            .map_err(server_err)?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DATABASE)
                .fetch_one(&mut conn)
                .await
                .map_err(server_err)?;
        if !exists {
            sqlx::query("CREATE DATABASE hotline")
                .execute(&mut conn)
                .await
                .map_err(server_err)?;
        }
        let _ = conn.close().await;
        Ok(())
    }

    fn log_tail(&self) -> String {
        match std::fs::read_to_string(&self.log_path) {
            Ok(s) => format!("server log {}:\n{}", self.log_path.display(), tail(&s, 15)),
            Err(_) => format!("no server log at {}", self.log_path.display()),
        }
    }

    /// Fast shutdown: the server disconnects its clients, checkpoints and exits. Waits up to
    /// 30 seconds, then asks for an immediate shutdown.
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
        }
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(status) => {
                let status = status?;
                tracing::info!(%status, "embedded PostgreSQL stopped");
                Ok(())
            }
            Err(_) => {
                if let Some(pid) = child.id() {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGQUIT);
                }
                let _ = child.wait().await;
                Err(EmbeddedError::Server {
                    what: "stopping postgres",
                    detail: "no fast shutdown within 30 s; sent an immediate shutdown".into(),
                })
            }
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
        }
    }
}

/// The cluster's major version must be the binaries' (a 15 cluster cannot run on 16).
fn check_version(bin: &Path, data_dir: &Path) -> Result<(), EmbeddedError> {
    let cluster = std::fs::read_to_string(data_dir.join("PG_VERSION"))?;
    let cluster = cluster.trim();
    let binaries = bin
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()));
    match binaries {
        Some(b) if b != cluster => Err(EmbeddedError::Directory {
            dir: data_dir.to_path_buf(),
            why: format!(
                "the cluster was made by PostgreSQL {cluster} but the binaries found are {b} ({}); \
                 upgrade it with pg_upgrade or move the directory away",
                bin.display()
            ),
        }),
        _ => Ok(()),
    }
}

/// A server left running by a Hotline that died without stopping it is stopped. Which Hotline
/// started the server is written in `owner.pid` beside the cluster; a server with no such file,
/// or whose owner still runs, belongs to someone else and is left alone.
async fn stop_orphan(dir: &Path, data_dir: &Path) -> Result<(), EmbeddedError> {
    let Some(pid) = read_pid(&data_dir.join("postmaster.pid")) else {
        return Ok(());
    };
    if !process_named(pid, "postgres") {
        return Ok(()); // stale file (the pid is gone or reused): postgres removes it itself
    }
    let owner = read_pid(&dir.join(OWNER_FILE));
    if owner.is_none_or(|o| process_named(o, "hotline")) {
        return Err(EmbeddedError::InUse {
            dir: dir.to_path_buf(),
            pid,
        });
    }
    tracing::warn!(
        pid,
        "stopping an embedded PostgreSQL left running by an earlier Hotline"
    );
    let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(30);
    while process_named(pid, "postgres") {
        if Instant::now() >= deadline {
            return Err(EmbeddedError::Server {
                what: "stopping a leftover postgres",
                detail: format!("pid {pid} did not stop within 30 s"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
}

fn process_named(pid: i32, name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
