//! The `trellis` command: `serve` runs everything; `validate` and `apply` handle declarative
//! config files. Every `serve` flag is also an environment variable `TRELLIS_<FLAG>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::sync::watch;
use trellis_core::ArnContext;

use crate::api::Api;
use crate::controller::Controller;
use crate::dataplane::{access_log::AccessLog, server, DataPlane};

#[derive(Parser)]
#[command(
    name = "trellis",
    version,
    about = "Self-hosted, AWS-compatible serverless application network"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, the data plane and every engine.
    Serve(Box<ServeArgs>),
    /// Check config files without applying them; prints every error with its JSON pointer.
    Validate {
        /// A JSON config file or a folder of them.
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the declarative config.
    Schema,
    /// Print every resource endpoint of a running Trellis: association, resource configuration, URL.
    Endpoints {
        /// The API address of the running Trellis.
        #[arg(
            long,
            env = "TRELLIS_ENDPOINT",
            default_value = "http://127.0.0.1:4566"
        )]
        endpoint: String,
    },
    /// Apply a config file to a running Trellis; nothing changes if any part is invalid.
    Apply {
        path: PathBuf,
        /// The API address of the running Trellis.
        #[arg(
            long,
            env = "TRELLIS_ENDPOINT",
            default_value = "http://127.0.0.1:4566"
        )]
        endpoint: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A JSON config file or a folder of them, applied at start and on change.
    #[arg(long, env = "TRELLIS_CONFIG")]
    config: Option<PathBuf>,
    /// The embedded store's folder.
    #[arg(long, env = "TRELLIS_DATA_DIR", default_value = "./.trellis")]
    data_dir: PathBuf,
    /// `sqlite://PATH` (default: the data dir's file) or `postgres://…`.
    #[arg(long, env = "TRELLIS_STORE")]
    store: Option<String>,
    /// The AWS-compatible API, metrics and health.
    #[arg(long, env = "TRELLIS_API", default_value = "127.0.0.1:4566")]
    api: SocketAddr,
    /// The data plane's HTTP listeners.
    #[arg(long, env = "TRELLIS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The data plane's HTTPS and TLS_PASSTHROUGH listeners.
    #[arg(long, env = "TRELLIS_LISTEN_TLS", default_value = "127.0.0.1:8443")]
    listen_tls: SocketAddr,
    /// The region in every ARN.
    #[arg(long, env = "TRELLIS_REGION", default_value = "us-east-1")]
    region: String,
    /// The account id in every ARN.
    #[arg(long, env = "TRELLIS_ACCOUNT", default_value = "000000000000")]
    account: String,
    /// Data-plane threads for the HTTP listener (default: one per core).
    #[arg(long, env = "TRELLIS_WORKERS")]
    workers: Option<usize>,
    /// Data-plane access log: `stdout` or a file path (off when unset).
    #[arg(long, env = "TRELLIS_ACCESS_LOG")]
    access_log: Option<String>,
    /// Address ranges no resource configuration may name or reach (`10.0.0.0/8,169.254.0.0/16`).
    #[arg(long, env = "TRELLIS_RESOURCE_FORBIDDEN_CIDRS", value_delimiter = ',')]
    resource_forbidden_cidrs: Vec<trellis_resource_gateway::Cidr>,
}

/// Runs a `trellis` command line (`["trellis", "serve", …]`) on the current runtime; for
/// embedding, as the examples do.
pub async fn run<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Validate { paths } => validate(paths).await,
        Command::Apply { path, endpoint } => apply(path, endpoint).await,
        Command::Schema => print_schema(),
        Command::Endpoints { endpoint } => {
            crate::lattice::resource_association::print_endpoints(&endpoint).await
        }
    }
}

/// Log lines reach stderr through a background thread, so code that logs on a hot path (the
/// resource gateway's per-connection access log, say) only queues its line instead of waiting
/// for the write. [`QueuedStderr::flush`] waits until everything queued is written.
struct QueuedStderr {
    queue: Option<std::sync::mpsc::Sender<LogMessage>>,
}

enum LogMessage {
    Line(Vec<u8>),
    Flush(std::sync::mpsc::Sender<()>),
}

impl QueuedStderr {
    fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<LogMessage>();
        let writer = std::thread::Builder::new()
            .name("log".into())
            .spawn(move || {
                use std::io::Write as _;
                let stderr = std::io::stderr();
                while let Ok(first) = rx.recv() {
                    let mut out = stderr.lock();
                    let mut write = |m: LogMessage| match m {
                        LogMessage::Line(line) => {
                            let _ = out.write_all(&line);
                        }
                        LogMessage::Flush(done) => {
                            let _ = out.flush();
                            let _ = done.send(());
                        }
                    };
                    write(first);
                    // Whatever else is queued goes out in the same locked stretch.
                    while let Ok(more) = rx.try_recv() {
                        write(more);
                    }
                    let _ = out.flush();
                }
            });
        // Without the thread, lines are written directly.
        Self {
            queue: writer.ok().map(|_| tx),
        }
    }

    /// Waits (at most a second) until every line queued so far is written.
    fn flush(&self) {
        let Some(queue) = &self.queue else { return };
        let (done, written) = std::sync::mpsc::channel();
        if queue.send(LogMessage::Flush(done)).is_ok() {
            let _ = written.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

impl std::io::Write for &QueuedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.queue {
            Some(queue) if queue.send(LogMessage::Line(buf.to_vec())).is_ok() => Ok(buf.len()),
            _ => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The subscriber's handle on the shared [`QueuedStderr`] (`main` keeps one to flush it).
struct LogHandle(std::sync::Arc<QueuedStderr>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogHandle {
    type Writer = &'a QueuedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        &self.0
    }
}

/// Entry point of the `trellis` binary.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let log = std::sync::Arc::new(QueuedStderr::start());
    tracing_subscriber::fmt()
        .with_writer(LogHandle(log.clone()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("trellis: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Validate { paths } => validate(paths).await,
            Command::Apply { path, endpoint } => apply(path, endpoint).await,
            Command::Schema => print_schema(),
            Command::Endpoints { endpoint } => {
                crate::lattice::resource_association::print_endpoints(&endpoint).await
            }
        }
    });
    log.flush();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trellis: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let arn = ArnContext {
        partition: "aws".into(),
        region: args.region.clone(),
        account: args.account.clone(),
    };
    let store = trellis_store::open(args.store.as_deref(), &args.data_dir)?;
    let access_log = args
        .access_log
        .as_deref()
        .map(AccessLog::open)
        .transpose()?;
    // One registry of invocable targets for every engine and the data plane.
    let targets = Arc::new(trellis_core::target::TargetRegistry::default());
    let dataplane = Arc::new(
        DataPlane::new(access_log, args.data_dir.join("certificates"))
            .with_targets(targets.clone(), &args.region),
    );
    let controller =
        Arc::new(Controller::load(store.clone(), arn.clone(), dataplane.clone()).await?);
    // Resource gateway endpoints: brought up now, then kept in step by every Lattice write.
    crate::lattice::resource_association::start(
        &controller.state(),
        crate::lattice::resource_association::Options {
            targets: Some(targets.clone()),
            certificates: args.data_dir.join("certificates"),
            forbidden_cidrs: args.resource_forbidden_cidrs.clone(),
        },
    );

    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind {what} address {addr}: {e}"))
    };
    let api_listener = bind(args.api, "--api").await?;
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let listen = server::bind_reuseport(args.listen, workers)
        .map_err(|e| anyhow::anyhow!("cannot bind --listen address {}: {e}", args.listen))?;
    // Services as targets (rule targets, connections) reach the data plane here.
    if let Some(addr) = listen.first().and_then(|l| l.local_addr().ok()) {
        dataplane.service_targets.set_listen(addr);
    }
    let listen_tls = bind(args.listen_tls, "--listen-tls").await?;

    // === engines: each domain crate's API service and targets, wired here and only here ===
    let step_functions =
        trellis_workflows::service::start(store.clone(), arn.clone(), targets.clone()).await?;
    let event_bridge =
        trellis_events::service::start(store.clone(), arn.clone(), targets.clone()).await?;
    let json_services: Vec<Arc<dyn trellis_core::api::JsonService>> =
        vec![step_functions, event_bridge];
    let lambda = trellis_functions::Lambda::load(
        store.clone(),
        arn.clone(),
        &args.data_dir,
        targets.clone(),
    )
    .await?;
    let rest_services: Vec<Arc<dyn trellis_core::api::RestService>> =
        vec![controller.clone(), Arc::new(lambda)];
    let query_services: Vec<Arc<dyn trellis_core::api::QueryService>> = vec![
        Arc::new(trellis_functions::Sts::new(arn.clone())),
        Arc::new(trellis_functions::Iam::new(store.clone(), arn.clone())),
    ];
    // === end engines ===

    let api = Arc::new(Api {
        lattice: controller.clone(),
        rest: rest_services,
        json: json_services,
        query: query_services,
    });
    // The config is applied once every engine runs, and before the readiness line.
    let engines = crate::config::Engines::from_services(&api.rest, &api.json);
    if let Some(path) = &args.config {
        apply_file(&controller, &engines, path).await?;
    }

    let ready = ready_line(&api_listener, &listen, &listen_tls)?;
    let (tx, rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(api.serve(api_listener, rx.clone())),
        tokio::spawn(server::serve_plain_per_core(
            dataplane.clone(),
            listen,
            rx.clone(),
        )),
        tokio::spawn(server::serve_tls(dataplane.clone(), listen_tls, rx.clone())),
    ];
    if let Some(path) = args.config.clone() {
        tokio::spawn(watch_config(controller.clone(), engines, path, rx.clone()));
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{ready}")?;
        out.flush()?;
    }

    shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    let _ = tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// The readiness line of the fixed contract: one JSON object on stdout.
fn ready_line(
    api: &TcpListener,
    listen: &[std::net::TcpListener],
    tls: &TcpListener,
) -> anyhow::Result<String> {
    let listen = listen
        .first()
        .ok_or_else(|| anyhow::anyhow!("no data-plane listener"))?;
    Ok(serde_json::json!({
        "ready": true,
        "api": api.local_addr()?.to_string(),
        "listen": listen.local_addr()?.to_string(),
        "listen_tls": tls.local_addr()?.to_string(),
    })
    .to_string())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn apply_file(
    controller: &Controller,
    engines: &crate::config::Engines,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let text = crate::config::read_path(path).map_err(|e| anyhow::anyhow!(e))?;
    let source = crate::config::Source {
        locate: path.is_file(),
        base: Some(crate::config::base_of(path)),
    };
    crate::config::apply(controller, engines, &text, &source)
        .await
        .map_err(|e| anyhow::anyhow!("config {}: {}", path.display(), describe(&e)))?;
    Ok(())
}

/// Re-applies the config when a file under `path` changes (polled: portable and cheap).
async fn watch_config(
    controller: Arc<Controller>,
    engines: crate::config::Engines,
    path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last = modified(&path);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.changed() => return,
        }
        let now = modified(&path);
        if now != last {
            last = now;
            match apply_file(&controller, &engines, &path).await {
                Ok(()) => tracing::info!(config = %path.display(), "config re-applied"),
                Err(e) => tracing::error!("{e}"),
            }
        }
    }
}

fn modified(path: &std::path::Path) -> Vec<(PathBuf, Option<SystemTime>)> {
    let files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    } else {
        vec![path.to_path_buf()]
    };
    let mut v: Vec<_> = files
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
            (f, m)
        })
        .collect();
    v.sort();
    v
}

/// An API error as lines a person reads: the summary, then one line per field.
fn describe(e: &trellis_core::ApiError) -> String {
    let mut out = format!("{}: {}", e.code, e.message);
    if let Some(fields) = e.extra.get("fieldList").and_then(|f| f.as_array()) {
        out = format!("{} error(s)", fields.len());
        for f in fields {
            out.push_str(&format!(
                "\n  {}: {}",
                f["name"].as_str().unwrap_or(""),
                f["message"].as_str().unwrap_or("")
            ));
        }
    }
    out
}

async fn validate(paths: Vec<PathBuf>) -> anyhow::Result<()> {
    if paths.is_empty() {
        anyhow::bail!("name at least one config file or folder");
    }
    // Engines over a scratch store, so the engines' sections get the engines' own checks.
    let scratch = std::env::temp_dir().join(format!("trellis-validate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let store = trellis_store::open(None, &scratch)?;
    let arn = ArnContext::default();
    let targets = Arc::new(trellis_core::target::TargetRegistry::default());
    let engines = crate::config::Engines {
        lambda: Some(Arc::new(
            trellis_functions::Lambda::load(store.clone(), arn.clone(), &scratch, targets.clone())
                .await?,
        )),
        events: Some(
            trellis_events::service::start(store.clone(), arn.clone(), targets.clone()).await?,
        ),
        step_functions: Some(trellis_workflows::service::start(store, arn.clone(), targets).await?),
    };
    let mut failed = false;
    for path in paths {
        let controller = Controller::in_memory(arn.clone());
        match apply_file(&controller, &engines, &path).await {
            Ok(()) => println!("{}: ok", path.display()),
            Err(e) => {
                failed = true;
                println!("{e:#}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if failed {
        anyhow::bail!("invalid config");
    }
    Ok(())
}

async fn apply(path: PathBuf, endpoint: String) -> anyhow::Result<()> {
    use http_body_util::{BodyExt, Full};
    let text = crate::config::read_path(&path).map_err(|e| anyhow::anyhow!(e))?;
    // Relative paths in the file are the file's; the server resolves them against `base`.
    let base: String = crate::config::base_of(&path)
        .display()
        .to_string()
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let locate = if path.is_file() { "" } else { "&locate=false" };
    let uri: http::Uri = format!(
        "{}/trellis/config?base={base}{locate}",
        endpoint.trim_end_matches('/')
    )
    .parse()?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let req = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes::Bytes::from(text)))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {endpoint}: {e}"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status.is_success() {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut e = trellis_core::ApiError::new(
        v["__type"].as_str().unwrap_or("Error"),
        status.as_u16(),
        v["message"].as_str().unwrap_or(""),
    );
    if let Some(f) = v.get("fieldList") {
        e = e.with("fieldList", f.clone());
    }
    anyhow::bail!("{}: {}", path.display(), describe(&e))
}

fn print_schema() -> anyhow::Result<()> {
    let schema = crate::config::schema::schema(&crate::controller::lattice_model());
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(())
}
