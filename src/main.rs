//! quantrac command line: run, demo, check-config, bench.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use quantrac::config::{Config, DEMO_TOML};
use quantrac::daemon;

#[derive(Parser)]
#[command(
    name = "quantrac",
    version,
    about = "Automatic wastewater monitoring daemon (Circular 10/2021, QCVN 40:2011)"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log filter, e.g. `info`, `quantrac=debug` (also RUST_LOG).
    // The embedded broker (rumqttd) logs every connection at INFO and every client disconnect as an ERROR
    // ("no-connection id … is already gone") from its router; keep those out of the default output.
    #[arg(
        long,
        global = true,
        default_value = "info,rumqttd=warn,rumqttd::router::routing=off,rumqttd::server::broker=off"
    )]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon with a config file.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the eight simulated Bắc Ninh industrial-zone stations on embedded defaults.
    Demo {
        /// Where to keep the demo ledger.
        #[arg(long, default_value = "quantrac-demo.db")]
        ledger: PathBuf,
        /// Dashboard and API address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: std::net::SocketAddr,
    },
    /// Check a config file: list stations, sources and the limit of every monitored parameter.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ingest readings from standard input (JSON lines) with the config's stations and limits. After each batch
    /// commits, prints `committed <lines>` to standard output: every line up to there is in the ledger.
    Ingest {
        #[arg(long, short)]
        config: PathBuf,
        /// Most lines per batch.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Back up the ledger while quantrac runs (SQLite online backup): a consistent single-file copy.
    Backup {
        #[arg(long, short)]
        config: PathBuf,
        /// Where to write the copy (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Make an API token: prints the token (give it to its holder) and the `[[http.token]]` lines for the config.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Measure throughput and print the numbers.
    Bench {
        /// What to measure.
        #[arg(value_enum, default_value_t = Bench::Ledger)]
        what: Bench,
        /// Readings per measurement.
        #[arg(long, default_value_t = 200_000)]
        readings: usize,
        /// For `influx`: the server's base URL (default: start a local victoria-metrics).
        #[arg(long)]
        url: Option<String>,
        /// Seconds measured per run (`modbus`).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// A new random token for a role.
    New {
        /// viewer, operator, auditor or admin.
        #[arg(long)]
        role: String,
        /// Who will hold it (recorded in the audit table).
        #[arg(long, default_value = "token-holder")]
        name: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Bench {
    /// Readings/s committed through processor + ledger at batch sizes 1, 100, 1,000.
    Ledger,
    /// Lines/s forwarded from the ledger to the InfluxDB write API, against a bare HTTP loop.
    Influx,
    /// SSE fan-out to 500 dashboard clients while ingesting: readings/s and latency to the clients.
    Sse,
    /// Modbus polling of 100 and 1,000 simulated stations: polls/s, CPU, RSS, ratio to a bare tokio-modbus loop.
    Modbus,
    /// The simulator process that `bench modbus` starts.
    #[value(hide = true)]
    ModbusSim,
    /// Readings/s committed from Mosquitto (QoS 1, 10 readings per message) beside mosquitto_sub's rate.
    Mqtt,
    /// Latency from a reading's commit to its alert arriving at a local webhook (p50/p99), 1,000 notifications.
    Alerts,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Run { config } => match Config::load(&config) {
            Ok(c) => run(c),
            Err(e) => config_failed(&e),
        },
        Command::Demo { ledger, http } => {
            let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            match Config::from_str(DEMO_TOML, Path::new("<embedded config/demo.toml>"), &base) {
                Ok(mut c) => {
                    c.ledger.path = base.join(ledger);
                    c.http.listen = http;
                    c.http.public_url = format!("http://{http}");
                    demo_webhook(&mut c);
                    run(c)
                }
                Err(e) => config_failed(&e),
            }
        }
        Command::Ingest { config, batch } => match Config::load(&config) {
            Ok(c) => runtime().block_on(async {
                match daemon::ingest_stdin(c, batch.max(1)).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(daemon::DaemonError::Config(e)) => config_failed(&e),
                    Err(e) => {
                        tracing::error!(error = %e, "Ingest stopped on an error.");
                        ExitCode::FAILURE
                    }
                }
            }),
            Err(e) => config_failed(&e),
        },
        Command::Backup { config, to } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return config_failed(&e),
            };
            if to.exists() {
                eprintln!("{} exists; choose a new file for the backup", to.display());
                return ExitCode::from(2);
            }
            match quantrac::ledger::backup(&config.ledger.path, &to) {
                Ok(()) => {
                    println!(
                        "backed up {} to {}",
                        config.ledger.path.display(),
                        to.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("backup failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token {
            action: TokenAction::New { role, name },
        } => {
            if quantrac::config::http::Role::parse(&role).is_none() {
                eprintln!(
                    "unknown role {role:?}; expected one of viewer, operator, auditor, admin"
                );
                return ExitCode::from(2);
            }
            let (token, hash) = match quantrac::http::auth::new_token() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("cannot read random bytes from the operating system: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("token (give this to {name}; it is not stored anywhere): {token}");
            println!();
            println!("[[http.token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{hash}\"");
            ExitCode::SUCCESS
        }
        Command::Bench {
            what,
            readings,
            url,
            seconds,
        } => runtime().block_on(async {
            let result = match what {
                Bench::Ledger => quantrac::bench::ledger(readings).await,
                Bench::Influx => quantrac::bench::influx(readings, url).await,
                Bench::Sse => quantrac::bench::sse(500, seconds).await,
                Bench::Modbus => quantrac::source::modbus::bench::run(seconds)
                    .await
                    .map_err(|e| e.to_string().into()),
                Bench::ModbusSim => quantrac::source::modbus::bench::serve_sim()
                    .await
                    .map_err(|e| e.to_string().into()),
                Bench::Mqtt => quantrac::source::mqtt::bench::run(readings).await,
                Bench::Alerts => quantrac::bench::alerts(readings.min(1000)).await,
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("benchmark failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }),
    }
}

/// `QUANTRAC_DEMO_WEBHOOK=<url>` (and optionally `QUANTRAC_DEMO_WEBHOOK_SECRET`): the demo also posts the drifting
/// plant's alerts to that webhook, beside the log.
fn demo_webhook(c: &mut Config) {
    use quantrac::config::alert::{Channel, ChannelKind};
    let Ok(url) = std::env::var("QUANTRAC_DEMO_WEBHOOK") else {
        return;
    };
    c.alert.channels.push(Channel {
        name: "demo-webhook".into(),
        kind: ChannelKind::Webhook {
            url,
            secret: std::env::var("QUANTRAC_DEMO_WEBHOOK_SECRET")
                .ok()
                .map(quantrac::config::Secret::new),
        },
        timeout: std::time::Duration::from_secs(10),
    });
    for r in &mut c.alert.routes {
        r.channels.push("demo-webhook".into());
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime")
}

fn run(config: Config) -> ExitCode {
    runtime().block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(quantrac::signals::shutdown_on_signal(shutdown.clone()));
        match daemon::run(config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(daemon::DaemonError::Config(e)) => config_failed(&e),
            Err(e) => {
                tracing::error!(error = %e, "quantrac stopped on an error.");
                ExitCode::FAILURE
            }
        }
    })
}

fn config_failed(e: &quantrac::config::ConfigError) -> ExitCode {
    for line in e.lines() {
        eprintln!("{line}");
    }
    ExitCode::from(2)
}

fn check_config(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return config_failed(&e),
    };
    let limits = match daemon::resolve_limits(&config) {
        Ok(l) => l,
        Err(e) => return config_failed(&e),
    };
    println!(
        "{}: {} stations, time zone {}, ledger {}",
        path.display(),
        config.stations.len(),
        config.timezone_name,
        config.ledger.path.display()
    );
    for s in &config.stations {
        println!();
        println!("{}  {}", s.id, s.name);
        println!(
            "  zone: {}   profile: {}   design flow: {} m³/day   interval: {}",
            s.zone,
            s.profile,
            s.design_flow_m3_day,
            humantime::format_duration(s.interval)
        );
        let sources = s.sources();
        println!(
            "  sources: {}",
            if sources.is_empty() {
                "TT10 files only".to_string()
            } else {
                sources.join(", ")
            }
        );
        for p in &s.parameters {
            let working = limits
                .get(&s.id)
                .and_then(|l| l.get(&p.parameter))
                .map_or_else(|| "no limit".to_string(), |l| l.working.clone());
            println!("  {}: {}", p.parameter, working);
        }
    }
    ExitCode::SUCCESS
}

fn init_logging(format: LogFormat, filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
