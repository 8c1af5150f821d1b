//! `paygate`: one binary, one subcommand per process kind.

mod background;
mod click_test;
mod openapi_coverage;
mod payme_test;
mod scaled;
mod secret;
mod serve;
mod shutdown;
mod wiring;

use clap::{Parser, Subcommand};
use paygate_common::config::{Config, Mode};
use std::process::ExitCode;

// mimalloc instead of the system allocator: every request, job and gateway
// call allocates (JSON, headers, rows), and with it the API, the workers and
// the simulators spent about a tenth less CPU per payment on the 2-core
// machine (PERFORMANCE.md, "The build and the allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "paygate",
    version,
    about = "Payments through regional gateways, reliably"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// API + worker pool + gateway simulators in one process (the default).
    Serve,
    /// HTTP API only (scaled mode: PostgreSQL + Redis); run as many as you like.
    Api,
    /// Worker pool only (scaled mode); run as many as you like.
    Worker,
    /// Gateway simulators only (medogram, Atmos, Payme, Click), on PAYGATE_LISTEN.
    Sandbox {
        #[command(subcommand)]
        action: Option<SandboxAction>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        action: ApikeyAction,
    },
}

#[derive(Subcommand)]
enum SandboxAction {
    /// Run Payme's merchant test scenarios against a merchant endpoint.
    PaymeTest(payme_test::PaymeTestArgs),
    /// Play Click's merchant acceptance test (15 scenarios + retry) against a merchant.
    ClickTest(click_test::ClickTestArgs),
}

#[derive(Subcommand)]
enum ApikeyAction {
    /// Create a key and print it once.
    Create {
        #[arg(long)]
        name: String,
        /// May list jobs and redrive dead letters.
        #[arg(long)]
        admin: bool,
    },
}

fn config(mode: Mode) -> Result<Config, ExitCode> {
    Config::from_env(mode).map_err(|e| {
        eprintln!("paygate: {e}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    // A .env file is optional; real environment variables win over it.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paygate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let result = match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => match config(Mode::Serve) {
                Ok(cfg) => serve::serve(cfg).await,
                Err(code) => return code,
            },
            Command::Api => match config(Mode::Api) {
                Ok(cfg) => scaled::api(cfg).await,
                Err(code) => return code,
            },
            Command::Worker => match config(Mode::Worker) {
                Ok(cfg) => scaled::worker(cfg).await,
                Err(code) => return code,
            },
            Command::Sandbox {
                action: Some(SandboxAction::PaymeTest(args)),
            } => return payme_test::run(args).await,
            Command::Sandbox {
                action: Some(SandboxAction::ClickTest(args)),
            } => return click_test::run(args).await,
            Command::Sandbox { action: None } => match config(Mode::Admin) {
                Ok(cfg) => serve::sandbox_only(cfg).await,
                Err(code) => return code,
            },
            Command::Migrate => match config(Mode::Admin) {
                Ok(cfg) => wiring::migrate(&cfg).await,
                Err(code) => return code,
            },
            Command::Apikey {
                action: ApikeyAction::Create { name, admin },
            } => match config(Mode::Admin) {
                Ok(cfg) => wiring::create_api_key(&cfg, &name, admin).await,
                Err(code) => return code,
            },
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("paygate: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}
