//! Command line: `serve`, `migrate` and `admin` tasks. Every command loads configuration
//! the same way (defaults, `warden.toml`, `WARDEN_*`) and fails with one line naming the
//! bad setting.
use crate::app::{Warden, open_database};
use crate::role::ServiceRole;
use clap::{Parser, Subcommand};
use warden_common::Config;
use warden_common::secret::Secret;

#[derive(Debug, Parser)]
#[command(name = "warden", version, about = "Warden authentication and authorization")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Warden: every service in one process, or one service with --service.
    Serve {
        /// auth, token, key, rbac or gateway (default: all in one process)
        #[arg(long, default_value = "all")]
        service: ServiceRole,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Administrative tasks on the configured database.
    Admin {
        #[command(subcommand)]
        task: AdminTask,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminTask {
    /// Create a user. The password is read from WARDEN_NEW_PASSWORD or standard input.
    CreateUser {
        username: String,
        /// Roles to assign (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Clear the lockout of a username.
    Unlock { username: String },
    /// Make a new signing key current; older keys keep verifying until their tokens expire.
    RotateKeys,
}

/// Runs the command with the configuration `main` loaded (it sizes the runtime from it).
pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { service } => serve(config, service).await,
        Command::Migrate => {
            let config = Config { auto_migrate: true, ..config };
            open_database(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin { task } => admin(config, task).await,
    }
}

async fn serve(config: Config, service: ServiceRole) -> anyhow::Result<()> {
    let _telemetry = warden_common::telemetry::init(config.log_format, &format!("warden-{service}"));
    let warden = Warden::start(config, service, warden_common::clock::system()).await?;
    shutdown_signal().await;
    tracing::info!("shutdown signal received; draining");
    warden.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.ok();
}

/// Admin tasks run the services in-process against the configured stores, without
/// listening anywhere.
async fn admin(config: Config, task: AdminTask) -> anyhow::Result<()> {
    let config = Config { http_addr: "127.0.0.1:0".into(), grpc_addr: "127.0.0.1:0".into(), ..config };
    let warden = Warden::start(config, ServiceRole::All, warden_common::clock::system()).await?;
    let auth = warden.local.auth.clone().expect("all-in-one runs auth");
    let result = match task {
        AdminTask::CreateUser { username, roles } => {
            let password = read_password()?;
            let user =
                warden_auth::AuthApi::create_user(auth.as_ref(), warden_auth::NewUser { username, password, roles })
                    .await?;
            println!("created user {} ({})", user.username, user.id);
            Ok(())
        }
        AdminTask::Unlock { username } => {
            auth.unlock(&username).await?;
            println!("unlocked {username}");
            Ok(())
        }
        AdminTask::RotateKeys => {
            let tokens = warden.local.tokens.clone().expect("all-in-one runs token");
            let kid = warden_token::TokenApi::rotate_signing_key(tokens.as_ref()).await?;
            println!("new signing key {kid}");
            Ok(())
        }
    };
    warden.shutdown().await;
    result
}

fn read_password() -> anyhow::Result<Secret> {
    if let Ok(p) = std::env::var("WARDEN_NEW_PASSWORD") {
        return Ok(Secret::new(p));
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password given: set WARDEN_NEW_PASSWORD or pipe it on standard input");
    }
    Ok(Secret::new(password))
}
