//! The `wsprobe` command line: run, check, once, demo.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use wsprobe::config::{self, Config};
use wsprobe::daemon::{self, Source};
use wsprobe::shard::Shard;
use wsprobe::target::Prepared;
use wsprobe::util::batched::Batched;
use wsprobe::util::units::HumanDuration;
use wsprobe::{demo, once};

/// Continuous WebSocket synthetic monitoring.
#[derive(Debug, Parser)]
#[command(name = "wsprobe", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("WSPROBE_REVISION"), ")"))]
struct Cli {
    /// Log line format (RUST_LOG filters, e.g. `RUST_LOG=wsprobe=debug`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: probe every target continuously, serve /metrics and the API.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Append every probe result to this JSON-lines file (for `wsprobe replay`).
        #[arg(long, value_name = "FILE.jsonl")]
        record: Option<PathBuf>,
        /// Probe only this shard's targets: INDEX/TOTAL, INDEX from 0 or a pod name ending in `-N`.
        #[arg(long, env = "WSPROBE_SHARD", value_name = "INDEX/TOTAL")]
        shard: Option<Shard>,
        #[command(flatten)]
        web: WebArgs,
    },
    /// Replay a recorded trace through the alert detector and print every alert transition.
    Replay {
        /// Configuration whose `alerting.detector` settings to use (defaults otherwise).
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_name = "FILE.jsonl")]
        trace: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Validate a configuration and print a summary (exit 0 valid, 2 invalid).
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// List only the targets this shard would probe (INDEX/TOTAL, as for `run`).
        #[arg(long, env = "WSPROBE_SHARD", value_name = "INDEX/TOTAL")]
        shard: Option<Shard>,
        /// Also validate this web configuration (TLS, basic auth), as `run` would load it.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config: Option<PathBuf>,
    },
    /// Probe each target once now (exit 0 all ok, 1 any failed, 2 bad configuration).
    Once {
        #[arg(long, short)]
        config: PathBuf,
        /// Only this target (repeatable).
        #[arg(long = "target", short = 't', value_name = "NAME")]
        targets: Vec<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Start an embedded demo service and a daemon probing it. No configuration needed.
    Demo {
        /// Address for /metrics and the API (falls back to a free port if taken).
        #[arg(long, default_value = config::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Probe interval of the demo targets.
        #[arg(long, default_value = "5s")]
        interval: HumanDuration,
        /// Open the status page in a browser (`$BROWSER`, else xdg-open), if one exists.
        #[arg(long)]
        open: bool,
    },
}

/// How the listener is secured (`wsprobe run`).
#[derive(Debug, clap::Args)]
struct WebArgs {
    /// TLS and basic authentication for /metrics and the API, in the Prometheus
    /// exporter-toolkit web configuration format; re-read on reload. Guards every route
    /// but /healthz.
    #[arg(long = "web.config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Serve POST /-/reload (SIGHUP reloads either way).
    #[arg(long = "web.enable-lifecycle", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    enable_lifecycle: bool,
    /// Host names a loopback listener answers to besides localhost and IP addresses,
    /// e.g. a name in /etc/hosts or a tunnel's (comma-separated or repeated).
    #[arg(long = "web.allowed-hosts", value_name = "NAME", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
}

impl WebArgs {
    fn options(self) -> wsprobe::listener::web::Options {
        wsprobe::listener::web::Options {
            config_file: self.config_file,
            enable_lifecycle: self.enable_lifecycle,
            allowed_hosts: self.allowed_hosts,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Once { .. } | Command::Check { .. } | Command::Replay { .. });
    // The daemon's informational lines are written in batches: a line per probe at
    // `debug`, and a first success per target at start, would otherwise each cost a
    // write. The one-shot commands log warnings only, and their lines go out as they
    // come, in order with what they print.
    let log = if quiet { Batched::immediate(std::io::stderr()) } else { Batched::start(std::io::stderr()) };
    init_logging(cli.log_format, if quiet { "warn" } else { "info" }, log.clone());
    let code = run_command(cli);
    log.flush();
    code
}

fn run_command(cli: Cli) -> ExitCode {
    report_panics_on_one_line();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsprobe: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Check { config, shard, web_config } => check(&config, shard, web_config.as_deref()),
            Command::Run { config, record, shard, web } => {
                with_config(&config, |c| run(c, config.clone(), record, shard, web.options())).await
            }
            Command::Replay { config, trace, format } => {
                with_config(&config, |c| async move { replay(&c, &trace, format) }).await
            }
            Command::Once { config, targets, format } => {
                with_config(&config, |c| run_once(c, targets, format)).await
            }
            Command::Demo { listen, interval, open } => report(run_demo(listen, interval.get(), open).await),
        }
    })
}

/// Libraries that log requests and frames (headers, tokens, payloads) at debug and trace.
const VERBOSE_LIBRARIES: [&str; 8] =
    ["tungstenite", "tokio_tungstenite", "hyper", "hyper_util", "rustls", "tokio_rustls", "h2", "axum"];

/// Set to `1` to let `RUST_LOG` raise those libraries past `info` (their logs may show secrets).
const UNSAFE_DEBUG_ENV: &str = "WSPROBE_LOG_UNSAFE_DEBUG";

/// A panic's own text can quote server text (a slice panic shows the string it cut), so
/// the log gets one line naming where it happened; a probe that panicked says what it was
/// doing in its redacted `internal_error` result. `WSPROBE_LOG_UNSAFE_DEBUG=1` keeps the
/// standard report (message and backtrace) too.
fn report_panics_on_one_line() {
    let standard = std::panic::take_hook();
    let unsafe_debug = std::env::var_os(UNSAFE_DEBUG_ENV).is_some_and(|v| v == "1");
    std::panic::set_hook(Box::new(move |info| {
        let location =
            info.location().map_or_else(|| "unknown".to_owned(), |l| format!("{}:{}", l.file(), l.line()));
        tracing::error!(
            %location,
            "wsprobe hit a bug (a panic); a probe it happened in fails with internal_error. Please report it with this location."
        );
        if unsafe_debug {
            standard(info);
        }
    }));
}

fn init_logging(format: LogFormat, default: &str, log: Batched<std::io::Stderr>) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A cap beside RUST_LOG rather than directives in it, so no RUST_LOG (however
    // specific its targets) can turn the libraries' request and frame dumps on.
    let unsafe_debug = std::env::var(UNSAFE_DEBUG_ENV).is_ok_and(|v| v == "1");
    // The cap lets through no more than RUST_LOG does, so the subscriber's most verbose
    // level is RUST_LOG's. The `log` crate's limit is set from it: the libraries' per-frame
    // `debug!` and `trace!` calls then stop in the macro, instead of each becoming a record
    // that is built, handed over and dropped here.
    let most = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let cap = if unsafe_debug {
        Targets::new().with_default(most)
    } else {
        VERBOSE_LIBRARIES.iter().fold(Targets::new().with_default(most), |t, lib| {
            t.with_target(*lib, LevelFilter::INFO.min(most))
        })
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(cap).with(filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(log).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => {
            registry.with(layer.json().flatten_event(true).with_current_span(false)).try_init()
        }
    };
}

/// Loads the configuration or exits 2 with every problem, each naming file and field.
async fn with_config<F, Fut>(path: &Path, f: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    match config::load(path) {
        Ok(c) => report(f(c).await),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn report(outcome: anyhow::Result<ExitCode>) -> ExitCode {
    outcome.unwrap_or_else(|e| {
        eprintln!("wsprobe: {e:#}");
        ExitCode::FAILURE
    })
}

fn check(path: &Path, shard: Option<Shard>, web_config: Option<&Path>) -> ExitCode {
    let mut c = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(web) = web_config {
        match wsprobe::listener::web::load(web) {
            Ok(active) => println!("{}: valid; {}", web.display(), active.summary()),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    }
    let probers: Result<Vec<_>, _> = c.targets.iter().map(|t| Prepared::new(t.clone())).collect();
    if let Err(e) = probers {
        eprintln!("{}: {e}", path.display());
        return ExitCode::from(2);
    }
    println!("{}: valid; listen {}; {} target(s)", path.display(), c.listen, c.targets.len());
    if let Some(shard) = shard {
        let all = c.targets.len();
        c.targets.retain(|t| shard.owns(&t.name));
        println!("shard {shard} probes {} of the {all} target(s):", c.targets.len());
    }
    for t in &c.targets {
        let mut watched = String::new();
        if !t.health.is_empty() {
            watched.push_str(&format!("; {} health check(s)", t.health.len()));
        }
        if t.remote_breakers.is_some() {
            watched.push_str("; remote breakers");
        }
        if let Some(s) = &t.session {
            let ping = humantime::format_duration(s.ping_interval);
            watched.push_str(&format!(
                "; held: {} session(s), ping every {ping} (not probed on the interval)",
                s.count
            ));
        }
        println!(
            "  {:<24} {}  every {} ±{}, probe timeout {}, {}{watched}",
            t.name,
            t.url,
            humantime::format_duration(t.interval),
            t.jitter,
            humantime::format_duration(t.timeouts.probe),
            match (t.steps.len(), t.server_speaks_first) {
                (0, true) => "connect, first message, ping, close".to_owned(),
                (0, false) => "connect, ping, close".to_owned(),
                (n, _) => format!("{n} steps"),
            }
        );
    }
    ExitCode::SUCCESS
}

async fn run(
    config: Config,
    path: PathBuf,
    record: Option<PathBuf>,
    shard: Option<Shard>,
    web: wsprobe::listener::web::Options,
) -> anyhow::Result<ExitCode> {
    let cancel = CancellationToken::new();
    let targets = config.targets.iter().filter(|t| shard.is_none_or(|s| s.owns(&t.name))).count();
    let options = daemon::Options { record, shard, web, ..Default::default() };
    let running = match daemon::start_with(config, Source::File(path.clone()), cancel.clone(), options).await
    {
        Ok(running) => running,
        Err(daemon::DaemonError::WebConfig(e)) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(config = %path.display(), targets, "wsprobe started.");
    daemon::reload_on_sighup(running.shared.reload.clone(), cancel.clone());
    daemon::shutdown_signal().await;
    cancel.cancel();
    running.wait().await;
    Ok(ExitCode::SUCCESS)
}

fn replay(config: &Config, trace: &Path, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let detector = config.alerting.as_ref().map(|a| a.detector.clone()).unwrap_or_default();
    let file = match std::fs::File::open(trace) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", trace.display());
            return Ok(ExitCode::from(2));
        }
    };
    let outcome = match wsprobe::replay::replay(&detector, std::io::BufReader::new(file)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {e}", trace.display());
            return Ok(ExitCode::from(2));
        }
    };
    let report = match format {
        OutputFormat::Json => {
            let json = serde_json::json!({
                "results": outcome.results,
                "session_events": outcome.session_events,
                "transitions": outcome.transitions,
            });
            serde_json::to_string_pretty(&json)? + "\n"
        }
        OutputFormat::Text => {
            let mut text = String::new();
            for t in outcome
                .transitions
                .iter()
                .filter(|t| t.notifies() || t.to == wsprobe::detect::AlertState::Pending)
            {
                let a = &t.alert;
                let scope = a.key.subject.as_ref().map(|s| format!(" {s}")).unwrap_or_default();
                text.push_str(&format!(
                    "{}  {:<8}  {} {}{scope}: {}\n",
                    wsprobe::alerting::rfc3339_unix(t.at),
                    format!("{:?}", t.to).to_lowercase(),
                    a.key.kind,
                    a.key.target,
                    a.description
                ));
            }
            let fired =
                outcome.transitions.iter().filter(|t| t.to == wsprobe::detect::AlertState::Firing).count();
            let sessions = match outcome.session_events {
                0 => String::new(),
                n => format!(" and {n} session events"),
            };
            text.push_str(&format!("{} results{sessions} replayed, {fired} alerts fired\n", outcome.results));
            text
        }
    };
    let _ = std::io::stdout().lock().write_all(report.as_bytes());
    Ok(ExitCode::SUCCESS)
}

async fn run_once(config: Config, names: Vec<String>, format: OutputFormat) -> anyhow::Result<ExitCode> {
    for name in &names {
        if !config.targets.iter().any(|t| &t.name == name) {
            let known: Vec<_> = config.targets.iter().map(|t| t.name.as_str()).collect();
            eprintln!(
                "{}: --target {name}: no such target (known: {})",
                config.file.display(),
                known.join(", ")
            );
            return Ok(ExitCode::from(2));
        }
    }
    let mut probers = Vec::new();
    for t in config.targets.iter().filter(|t| names.is_empty() || names.contains(&t.name)) {
        match Prepared::new(t.clone()) {
            Ok(p) => probers.push(p),
            Err(e) => {
                eprintln!("{}: target `{}`: {e}", config.file.display(), t.name);
                return Ok(ExitCode::from(2));
            }
        }
    }
    let selected = probers.len();
    let cancel = CancellationToken::new();
    // Health checks run beside the probes, as in the daemon.
    let (results, health) = tokio::select! {
        r = once::run(probers, &config, &cancel) => r,
        () = daemon::shutdown_signal() => {
            cancel.cancel();
            return Ok(ExitCode::from(130));
        }
    };
    for r in &results {
        wsprobe::target::scheduler::log_result(r, false);
    }
    for h in health.iter().flat_map(|t| &t.results) {
        wsprobe::health::log_health(h, false);
    }
    let report = match format {
        OutputFormat::Json => once::render_json(&results, &health) + "\n",
        OutputFormat::Text => once::render_text(&results, &health),
    };
    // A reader that went away (`| head`) is not a failure of the probes.
    let _ = std::io::stdout().lock().write_all(report.as_bytes());
    // Every selected target must have earned its pass: one without a result fails the gate.
    let ok = results.len() == selected
        && results.iter().all(|r| r.success)
        && health.iter().all(once::TargetHealth::ok);
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn run_demo(listen: SocketAddr, interval: Duration, open: bool) -> anyhow::Result<ExitCode> {
    let server = demo::start_server(interval).await.context("cannot start the demo service")?;
    // The usual port may be taken (a real wsprobe running?); the demo must still start.
    let listen = match std::net::TcpListener::bind(listen) {
        Ok(_) => listen,
        Err(_) => SocketAddr::new(listen.ip(), 0),
    };
    let yaml = demo::config_yaml(listen, &server.endpoints, interval);
    let config = config::parse(Path::new("<demo>"), &yaml).context("the demo configuration is invalid")?;
    let cancel = CancellationToken::new();
    let running = daemon::start(config, Source::Fixed, cancel.clone()).await?;
    let addr = running.addr;
    let page = format!("http://{addr}/");
    let opened = match open.then(|| demo::open_browser(&page)) {
        None => String::new(),
        Some(Ok(command)) => format!("  browser       started `{command}`\n"),
        Some(Err(why)) => format!("  browser       none opened ({why}); open the status page yourself\n"),
    };
    // Written with errors ignored: a closed stdout (a pipe whose reader left) must not
    // take the demo down.
    let e = &server.endpoints;
    let banner = format!(
        "wsprobe demo\n  status page   {page}\n{opened}  metrics       http://{addr}/metrics\n  targets       http://{addr}/api/targets\n  alerts        http://{addr}/api/alerts\n  demo service  ws://{ws}/agent (healthy), ws://{ws}/flaky (fails on a cycle: breaker opens and closes)\n                ws://{ws}/session (held sessions, cut after a short life for a stretch of every cycle)\n                wss://{wss}/tls (certificate made at start, CA in {ca})\n                http://{http}/health (the build drifts from {expected} and comes back)\n  probing every {}; alerts within a minute or two; press Ctrl-C to stop.\n",
        humantime::format_duration(interval),
        ws = e.ws,
        wss = e.wss,
        http = e.http,
        ca = e.ca_file.display(),
        expected = demo::EXPECTED_VERSION,
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    daemon::shutdown_signal().await;
    cancel.cancel();
    running.wait().await;
    drop(server);
    Ok(ExitCode::SUCCESS)
}
