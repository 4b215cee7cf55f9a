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
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Validate the configuration and the files it names; print every problem; exit non-zero
    /// if there is any.
    CheckConfig {
        /// Also print the effective configuration (file plus environment) as TOML.
        #[arg(long)]
        show: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            println!("configuration OK");
            return ExitCode::SUCCESS;
        }
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!("{} problem(s) found", problems.len());
        return ExitCode::from(2);
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
        let shutdown = serve::shutdown_token()?;
        match cli.command {
            Command::Serve => serve::run(cfg, shutdown).await,
            Command::Migrate => migrate(&cfg).await,
            Command::CheckConfig { .. } => Ok(()),
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
