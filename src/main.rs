//! The `hotline` command: `serve`, `migrate`, `check-config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hotline::config::{Config, LogFormat};
use hotline::serve::{self, Database};
use hotline::{db, logging};

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "12345 government-service hotline: SIP engine, ACD, tickets"
)]
struct Cli {
    /// Configuration file (TOML). Environment variables HOTLINE_<SECTION>__<KEY> override it.
    #[arg(long, short, global = true, env = "HOTLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Log format; overrides `log.format`.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start everything: database (embedded unless configured), migrations, HTTP, SIP.
    Serve {
        /// On SIGTERM, let the calls in progress end for at most this many seconds (overrides
        /// `node.drain_secs`; 0 stops at once).
        #[arg(long)]
        drain_secs: Option<u64>,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Drain the running node (the one whose process id is in `node.pid_file`): it stops
    /// taking new calls (503 with Retry-After; /ready answers 503), lets the calls in progress
    /// end for `node.drain_secs` at most, keeps its callbacks owed, then stops. Waits until it
    /// has stopped.
    Drain {
        /// Give up waiting after this many seconds (default: `node.drain_secs` plus 30).
        #[arg(long)]
        wait_secs: Option<u64>,
    },
    /// Create or change an agent's SIP account; the password is read from standard input and
    /// only its digest hashes (HA1, MD5 and SHA-256) are stored.
    SipAccount {
        /// The SIP user name (the agent's extension, e.g. 1001).
        username: String,
        /// Disable the account instead (its phones can no longer register).
        #[arg(long)]
        disable: bool,
    },
    /// Create a login for the HTTP API (or set a new password for one); the password is read
    /// from standard input (at least 10 characters) and stored as an argon2id hash. The first
    /// administrator is made this way; the rest through the API.
    User {
        /// The login name.
        username: String,
        /// Role: intake, dispatcher, unit_staff, supervisor, analyst or admin.
        #[arg(long, default_value = "admin")]
        role: String,
        /// The handling unit's code (unit staff only).
        #[arg(long)]
        unit: Option<String>,
        /// The name colleagues see (default: the login name).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Validate the configuration and the files it names; print every problem; exit non-zero
    /// if there is any.
    CheckConfig {
        /// Also print the effective configuration (file plus environment) as TOML.
        #[arg(long)]
        show: bool,
    },
    /// Validate an IVR script; print every problem as FILE:LINE: reason; exit 2 if there is any.
    CheckIvr {
        /// The script (TOML).
        file: std::path::PathBuf,
        /// A queue the script may send callers to (repeatable).
        #[arg(long = "queue", value_name = "NAME")]
        queues: Vec<String>,
        /// Also synthesise its text prompts (espeak-ng, cached beside the script), as `serve`
        /// does.
        #[arg(long)]
        speak: bool,
    },
    /// Dry-run an IVR script: print what a caller pressing KEYS would hear and where the call
    /// would go. KEYS are 0-9, *, # and t (let the timer fire); each prompt plays to its end.
    IvrWalk {
        /// The script (TOML).
        file: std::path::PathBuf,
        /// The keys, in order (e.g. "1 202611# t").
        #[arg(default_value = "")]
        keys: String,
        /// The caller's number (for `caller ~` conditions).
        #[arg(long, default_value = "13800000000")]
        caller: String,
        /// When the call happens, RFC 3339 (for time and calendar conditions); default now.
        #[arg(long)]
        at: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::CheckIvr {
        file,
        queues,
        speak,
    } = &cli.command
    {
        return check_ivr(file, queues, *speak);
    }
    if let Command::IvrWalk {
        file,
        keys,
        caller,
        at,
    } = &cli.command
    {
        return ivr_walk(file, keys, caller, at.as_deref());
    }
    let mut cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hotline: invalid configuration\n{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(f) = cli.log_format {
        cfg.log.format = f;
    }
    let problems = cfg.problems();
    if let Command::CheckConfig { show } = cli.command {
        if show {
            print!("{}", cfg.to_toml());
        }
        if problems.is_empty() {
            let tls = &cfg.http.tls;
            if tls.enabled(cfg.http.listen) {
                let now = chrono::Utc::now().timestamp();
                match hotline::http::tls::check(&tls.cert, &tls.key, now) {
                    Ok((_, info)) => println!(
                        "HTTPS certificate {}: for {}, expires {} ({} days), SHA-256 {}",
                        tls.cert.display(),
                        info.names.join(", "),
                        info.expires(),
                        info.days_left(now),
                        info.fingerprint
                    ),
                    Err(_) => println!(
                        "HTTPS certificate {}: generated (self-signed) at the first start",
                        tls.cert.display()
                    ),
                }
            }
            println!("configuration OK");
            return ExitCode::SUCCESS;
        }
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!("{} problem(s) found", problems.len());
        return ExitCode::from(2);
    }
    if let Command::Drain { wait_secs } = cli.command {
        return drain(&cfg, wait_secs);
    }
    if !problems.is_empty() {
        eprintln!("hotline: invalid configuration");
        for p in &problems {
            eprintln!("{p}");
        }
        return ExitCode::from(2);
    }
    logging::init(&cfg.log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hotline")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hotline: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let signals = serve::stop_signals()?;
        match cli.command {
            Command::Serve { drain_secs } => {
                if let Some(secs) = drain_secs {
                    cfg.node.drain_secs = secs;
                }
                serve::run(cfg, signals).await
            }
            Command::Migrate => migrate(&cfg).await,
            Command::User {
                username,
                role,
                unit,
                display_name,
            } => {
                user(
                    &cfg,
                    &username,
                    &role,
                    unit.as_deref(),
                    display_name.as_deref(),
                )
                .await
            }
            Command::SipAccount { username, disable } => {
                sip_account(&cfg, &username, disable).await
            }
            Command::CheckConfig { .. }
            | Command::CheckIvr { .. }
            | Command::IvrWalk { .. }
            | Command::Drain { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "hotline stopped with an error");
            eprintln!("hotline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `hotline drain`: SIGTERM to the node in the pid file, then wait for it to be gone.
fn drain(cfg: &Config, wait_secs: Option<u64>) -> ExitCode {
    use hotline::node::{process_alive, read_pid};
    let path = &cfg.node.pid_file;
    let Some(pid) = read_pid(path) else {
        eprintln!(
            "hotline drain: no node's process id in {} (node.pid_file): is a node running with this configuration?",
            path.display()
        );
        return ExitCode::from(2);
    };
    let Ok(raw) = i32::try_from(pid) else {
        eprintln!("hotline drain: {} holds no process id", path.display());
        return ExitCode::from(2);
    };
    if !process_alive(pid) {
        eprintln!(
            "hotline drain: process {pid} (from {}) is not running",
            path.display()
        );
        return ExitCode::from(2);
    }
    let target = nix::unistd::Pid::from_raw(raw);
    if let Err(e) = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM) {
        eprintln!("hotline drain: cannot signal process {pid}: {e}");
        return ExitCode::FAILURE;
    }
    let limit = std::time::Duration::from_secs(wait_secs.unwrap_or(cfg.node.drain_secs + 30));
    println!(
        "draining node {pid}: new calls are refused; waiting up to {}s for it to stop",
        limit.as_secs()
    );
    let start = std::time::Instant::now();
    while process_alive(pid) {
        if start.elapsed() > limit {
            eprintln!(
                "hotline drain: node {pid} still runs after {}s",
                limit.as_secs()
            );
            return ExitCode::FAILURE;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    println!(
        "node {pid} stopped after {:.1}s",
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

fn check_ivr(file: &std::path::Path, queues: &[String], speak: bool) -> ExitCode {
    let ctx = hotline::ivr::script::Context {
        queues: (!queues.is_empty()).then(|| queues.iter().cloned().collect()),
        tts: speak.then(|| hotline::ivr::tts::Tts::for_script(file, None)),
    };
    match hotline::ivr::script::load(file, &ctx) {
        Ok(script) => {
            println!(
                "{}: IVR script OK ({} nodes, start {:?})",
                file.display(),
                script.nodes.len(),
                script.start
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem(s) found", problems.len());
            ExitCode::from(2)
        }
    }
}

fn ivr_walk(file: &std::path::Path, keys: &str, caller: &str, at: Option<&str>) -> ExitCode {
    use hotline::china::calendar::WorkCalendar;
    use hotline::ivr::{facts::CallFacts, script, walk::walk};
    let script = match script::load(file, &script::Context::default()) {
        Ok(s) => s,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            return ExitCode::from(2);
        }
    };
    let now = match at.map(chrono::DateTime::parse_from_rfc3339) {
        None => chrono::Utc::now(),
        Some(Ok(t)) => t.with_timezone(&chrono::Utc),
        Some(Err(e)) => {
            eprintln!(
                "--at {:?}: {e}; expected RFC 3339 such as 2026-10-01T09:00:00+08:00",
                at.unwrap_or("")
            );
            return ExitCode::from(2);
        }
    };
    let calendar = match WorkCalendar::shipped() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("calendar: {e}");
            return ExitCode::FAILURE;
        }
    };
    let facts = CallFacts::new(caller, now, &calendar, Default::default());
    match walk(&std::sync::Arc::new(script), keys, &facts) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn user(
    cfg: &Config,
    username: &str,
    role: &str,
    unit: Option<&str>,
    display_name: Option<&str>,
) -> anyhow::Result<()> {
    use hotline::users::{self, Role};
    let role = Role::parse(role).ok_or_else(|| {
        anyhow::anyhow!(
            "role {role:?}: expected intake, dispatcher, unit_staff, supervisor, analyst or admin"
        )
    })?;
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    let mut database = Database::open(cfg).await?;
    let result = async {
        let unit_id = match unit {
            None => None,
            Some(code) => Some(
                sqlx::query_scalar!("SELECT id FROM units WHERE code = $1", code)
                    .fetch_optional(&database.pool)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no handling unit with code {code:?}"))?,
            ),
        };
        if users::set_password(&database.pool, username, &password).await? {
            return Ok("password changed");
        }
        let name = display_name.unwrap_or(username);
        users::create(&database.pool, username, name, role, unit_id, &password).await?;
        Ok::<_, anyhow::Error>("created")
    }
    .await;
    database.close().await;
    let what = result?;
    println!("user {username}: {what}");
    Ok(())
}

async fn sip_account(cfg: &Config, username: &str, disable: bool) -> anyhow::Result<()> {
    use hotline_sip::auth::{Algorithm, ha1};
    let valid = !username.is_empty()
        && username.len() <= 64
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
    anyhow::ensure!(
        valid,
        "user name {username:?}: expected 1 to 64 of A-Z a-z 0-9 . _ ~ -"
    );
    let realm = cfg.sip.realm.as_str();
    let mut database = Database::open(cfg).await?;
    let result = if disable {
        sqlx::query!(
            "UPDATE sip_accounts SET enabled = FALSE, updated_at = now() WHERE username = $1",
            username
        )
        .execute(&database.pool)
        .await
        .map(|r| r.rows_affected())
    } else {
        let mut password = String::new();
        std::io::stdin().read_line(&mut password)?;
        let password = password.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(
            password.len() >= 8,
            "the password must have at least 8 characters"
        );
        let md5 = ha1(Algorithm::Md5, username, realm, password);
        let sha = ha1(Algorithm::Sha256, username, realm, password);
        sqlx::query!(
            "INSERT INTO sip_accounts (username, realm, ha1_md5, ha1_sha256) VALUES ($1, $2, $3, $4)
             ON CONFLICT (username) DO UPDATE SET realm = $2, ha1_md5 = $3, ha1_sha256 = $4,
                 enabled = TRUE, updated_at = now()",
            username,
            realm,
            md5,
            sha
        )
        .execute(&database.pool)
        .await
        .map(|r| r.rows_affected())
    };
    database.close().await;
    let n = result?;
    anyhow::ensure!(n == 1, "no SIP account {username}");
    println!(
        "SIP account {username} {} in realm {realm}",
        if disable { "disabled" } else { "set" }
    );
    Ok(())
}

async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    let mut database = Database::open(cfg).await?;
    let status = db::readiness(&database.pool, std::time::Duration::from_secs(5)).await;
    database.close().await;
    if status.is_ready() {
        println!(
            "database is up to date ({} migrations)",
            db::MIGRATOR
                .iter()
                .filter(|m| m.migration_type.is_up_migration())
                .count()
        );
        Ok(())
    } else {
        anyhow::bail!("migrations still pending after migrate: {status:?}")
    }
}
