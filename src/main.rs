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
        default_value = "info,rumqttd=warn,rumqttd::router::routing=off"
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
    /// Measure throughput and print the numbers.
    Bench {
        /// What to measure.
        #[arg(value_enum, default_value_t = Bench::Ledger)]
        what: Bench,
        /// Readings per measurement.
        #[arg(long, default_value_t = 200_000)]
        readings: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Bench {
    /// Readings/s committed through processor + ledger at batch sizes 1, 100, 1,000.
    Ledger,
    /// Readings/s committed from Mosquitto (QoS 1, 10 readings per message) beside mosquitto_sub's rate.
    Mqtt,
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
        Command::Demo { ledger } => {
            let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            match Config::from_str(DEMO_TOML, Path::new("<embedded config/demo.toml>"), &base) {
                Ok(mut c) => {
                    c.ledger.path = base.join(ledger);
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
        Command::Bench { what, readings } => runtime().block_on(async {
            let result = match what {
                Bench::Ledger => quantrac::bench::ledger(readings).await,
                // MQTT source (issue 5).
                Bench::Mqtt => quantrac::source::mqtt::bench::run(readings).await,
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
