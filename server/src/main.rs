use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use parlance_server::cli::{run_ingest_command, run_models_command};
use parlance_server::config::{Command, LogFormat, StageBackend};
use parlance_server::{Config, Settings};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // SAFETY: nothing has started a thread yet; the async runtime is built below.
    unsafe { parlance_server::cpu::settle_thread_count() };
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("parlance: could not start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let config = Config::parse();
    // The models command reports in plain lines of its own; its logs only matter when something is wrong.
    // LanceDB logs every query plan and index write at INFO: its own warnings are what matter here.
    let default_filter =
        if config.command.is_some() { "warn" } else { "info,tower_http=info,lance=warn,lance_index=warn,lance_core=warn,lancedb=warn" };
    init_tracing(config.log_format, default_filter);
    if let Some(Command::Models(args)) = &config.command {
        let models_dir = config.models_dir.clone();
        let args = args.clone();
        let result = tokio::task::spawn_blocking(move || run_models_command(&models_dir, &args)).await;
        return match result {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(error)) => {
                eprintln!("parlance models: {error}");
                ExitCode::FAILURE
            }
            Err(panic) => {
                eprintln!("parlance models: the installer stopped unexpectedly: {panic}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Ingest(args)) = &config.command {
        return ingest(&config, args).await;
    }
    let settings = match config.validate() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("parlance: invalid setting: {error}\nSee `parlance --help` for every setting.");
            return ExitCode::from(2);
        }
    };
    match serve(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("parlance: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// After the grace period, how long cut turns have to store what their clients were sent.
const CUT_DEADLINE: Duration = Duration::from_secs(5);
/// How long HTTP requests still open at the end get before the process exits anyway.
const LAST_REQUESTS: Duration = Duration::from_secs(1);

async fn serve(settings: Settings) -> anyhow::Result<()> {
    log_stages(&settings);
    let (app, stopper) = parlance_server::start_stoppable(&settings).await?;
    let listener = TcpListener::bind(settings.bind).await.with_context(|| format!("could not listen on {}", settings.bind))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "listening");
    println!("Parlance is running at http://{address}/");
    announce_access(&settings, address);
    let stop_accepting = tokio_util::sync::CancellationToken::new();
    let server = axum::serve(parlance_server::without_nagle(listener), app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(stop_accepting.clone().cancelled_owned())
        .into_future();
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => return result.context("the server stopped with an error"),
        () = shutdown_signal() => {}
    }
    let grace = settings.shutdown_grace;
    tracing::info!(grace_secs = grace.as_secs(), "shutting down: no new connections or turns; the turns in flight may finish");
    stop_accepting.cancel();
    stopper.begin();
    if tokio::time::timeout(grace, stopper.finished()).await.is_err() {
        tracing::warn!("the grace period is over: cutting the turns still running, keeping what their clients were sent");
        stopper.cut();
        if tokio::time::timeout(CUT_DEADLINE, stopper.finished()).await.is_err() {
            tracing::error!("some turns did not stop in time");
        }
    }
    match tokio::time::timeout(LAST_REQUESTS, server).await {
        Ok(result) => result.context("the server stopped with an error")?,
        Err(_) => tracing::warn!("closing the HTTP requests still open"),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn ingest(config: &parlance_server::Config, args: &parlance_server::config::IngestArgs) -> ExitCode {
    let settings = match config.validate() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("parlance ingest: invalid setting: {error}");
            return ExitCode::from(2);
        }
    };
    match run_ingest_command(&settings, args).await {
        Ok(report) => {
            println!(
                "parlance ingest: {} new notes, {} already there, {} files skipped",
                report.added,
                report.unchanged,
                report.skipped.len()
            );
            if report.skipped.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            eprintln!("parlance ingest: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// How to sign in. The link with the token goes to standard output once, on the start that made the token,
/// never into the log; later starts say where the token is kept.
fn announce_access(settings: &Settings, address: SocketAddr) {
    use secrecy::ExposeSecret as _;
    let access = &settings.access;
    match (&access.users, &access.generated) {
        (None, _) => tracing::info!("no sign-in token: anyone who can reach this address may use Parlance"),
        (Some(_), Some(generated)) => {
            let host =
                if address.ip().is_unspecified() { std::net::SocketAddr::new([127, 0, 0, 1].into(), address.port()) } else { address };
            if generated.created {
                println!(
                    "Parlance is open to the network, so it made a sign-in token (kept in {}).\nSign in once with this link (replace the address with this machine's name or address on other devices):\n\n    http://{host}/#token={}\n",
                    generated.path.display(),
                    generated.token.expose_secret()
                );
            } else {
                println!("Sign in with the token in {} (open http://{host}/#token=<token>).", generated.path.display());
            }
            tracing::info!(token_file = %generated.path.display(), "every API call needs the sign-in token");
        }
        (Some(users), None) => tracing::info!(users = users.len(), "every API call needs a sign-in token"),
    }
}

fn log_stages(settings: &Settings) {
    for (stage, backend) in [("stt", &settings.stt), ("llm", &settings.llm), ("tts", &settings.tts), ("embeddings", &settings.embeddings)] {
        match backend {
            StageBackend::None => tracing::warn!(stage, "stage not configured"),
            StageBackend::Local { dir } => tracing::info!(stage, backend = "local", dir = %dir.display(), "stage uses an embedded model"),
            StageBackend::OpenAi(provider) => {
                tracing::info!(stage, backend = "openai", model = %provider.model, url = %parlance_server::openai::display_url(&provider.base_url), "stage ready")
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
