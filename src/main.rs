//! quantrac command line: run, demo, check-config, ingest, backup, export, verify, report, token, user, bench.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use quantrac::config::Config;
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
        /// Where to keep the demo ledger (relative to the current folder).
        #[arg(long, default_value = quantrac::config::demo::DEMO_LEDGER)]
        ledger: PathBuf,
        /// Dashboard and API address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: std::net::SocketAddr,
        /// The embedded MQTT broker's port (default 18830).
        #[arg(long)]
        mqtt_port: Option<u16>,
        /// The first simulated Modbus device's port; the other three follow it (default 15020–15023).
        #[arg(long)]
        modbus_port: Option<u16>,
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
    /// Probe a running quantrac's health endpoint (for container HEALTHCHECKs: the runtime image has no curl).
    /// Exits 0 when it answers 2xx within the timeout, 1 otherwise.
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Export the compliance history of stations for a period into a new folder: readings, aggregates, events and
    /// the compliance summary (CSV/JSON), Circular 10 TXT files, and a MANIFEST of SHA-256 hashes (optionally signed).
    Export(ExportArgs),
    /// Verify an export folder (or a tar archive from `GET /api/export`): every file against the MANIFEST's SHA-256,
    /// no file missing or added, the signature.
    Verify {
        /// The export folder, or its tar archive.
        dir: PathBuf,
        /// The signer's public key (64 hex digits or a .pub file): the export must be signed by it.
        #[arg(long)]
        key: Option<String>,
    },
    /// Ed25519 keys for signing exports.
    ExportKey {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// The official monthly report of a plant as one printable A4 HTML file (Vietnamese page, English page), with
    /// the export of its data whose MANIFEST SHA-256 the report cites.
    Report(ReportArgs),
    /// Make an API token: prints the token (give it to its holder) and the `[[http.token]]` lines for the config.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Dashboard accounts in the config's ledger (works while the daemon runs): create the first admin, recover a
    /// locked-out one. Passwords are read from standard input (a prompt on a terminal), never from an argument.
    User {
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        action: UserAction,
    },
    /// Measure throughput and print the numbers.
    Bench {
        /// What to measure.
        #[arg(value_enum, default_value_t = Bench::Ledger)]
        what: Bench,
        /// Readings per measurement (default 200,000; for `api`, the ledger's size: 50,457,600).
        #[arg(long)]
        readings: Option<usize>,
        /// For `influx`: the server's base URL (default: start a local victoria-metrics).
        #[arg(long)]
        url: Option<String>,
        /// Seconds measured per run (`modbus`).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[command(flatten)]
        e2e: E2eArgs,
    },
}

/// Options of `bench e2e` and `bench soak`.
#[derive(Args)]
struct E2eArgs {
    /// `e2e`: bursts published into one daemon (each of --readings, default 500,000).
    #[arg(long, default_value_t = 1)]
    bursts: usize,
    /// `e2e`, `soak`: publishing stations.
    #[arg(long, default_value_t = 50)]
    stations: usize,
    /// `e2e`, `soak`: another quantrac binary, run the same way after this one.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// `e2e`: only this stream (default both).
    #[arg(long, value_parser = ["realistic", "harsh"])]
    stream: Option<String>,
    /// `e2e`: seconds idle after the last burst before the last RSS sample.
    #[arg(long, default_value_t = 30)]
    idle: u64,
    /// `soak`: minutes of sustained publishing.
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// `soak`: readings per second.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
}

/// `quantrac report`.
#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    source: ConfigSource,
    #[arg(long)]
    station: String,
    /// The month, yyyy-MM, local time. A month in progress is counted up to the last hour that has ended.
    #[arg(long)]
    month: String,
    /// The HTML file to write (print it on A4 from a browser).
    #[arg(long)]
    out: PathBuf,
    /// The folder for the report's data (an export whose MANIFEST SHA-256 the report cites); it must not exist or
    /// be empty. Default: `<out name>-data` beside the report.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Sign the data's MANIFEST with this Ed25519 secret key file (`quantrac export-key new`).
    #[arg(long)]
    sign: Option<PathBuf>,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    source: ConfigSource,
    /// Station id (repeat for several); none: every station.
    #[arg(long)]
    station: Vec<String>,
    /// Start of the period, local time: 2026-10-01, 2026-10-01T08:00, 2026-10 or RFC 3339.
    #[arg(long)]
    from: String,
    /// End of the period (excluded), same forms.
    #[arg(long)]
    to: String,
    /// csv, json, tt10 or all.
    #[arg(long, default_value = "all")]
    format: String,
    /// The export folder (must not exist, or be empty).
    #[arg(long)]
    out: PathBuf,
    /// Sign the MANIFEST with this Ed25519 key file (`quantrac export-key new`).
    #[arg(long)]
    sign: Option<PathBuf>,
    /// The MANIFEST's export time (RFC 3339 or local time); default now. Re-exporting a closed period with the
    /// same value gives byte-identical files, MANIFEST included.
    #[arg(long)]
    exported_at: Option<String>,
}

/// Where a command that reads a ledger gets its config: a file, or the demo's embedded config with the ledger
/// `quantrac demo` writes in the current folder.
#[derive(Args)]
struct ConfigSource {
    #[arg(long, short, required_unless_present = "demo", conflicts_with = "demo")]
    config: Option<PathBuf>,
    /// Read the demo's ledger (`quantrac-demo.db` in the current folder, or `--ledger`) with the demo's config.
    #[arg(long)]
    demo: bool,
    /// With `--demo`: the demo ledger file, as given to `quantrac demo --ledger`.
    #[arg(long, requires = "demo")]
    ledger: Option<PathBuf>,
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

#[derive(Subcommand)]
enum UserAction {
    /// Add an account; its password is read from standard input.
    Add {
        name: String,
        /// viewer, operator, auditor or admin.
        #[arg(long)]
        role: String,
        /// Stations the account may see: ids or prefixes with * (`BN_KCNTS_*`), repeat or separate with commas;
        /// default every station.
        #[arg(long)]
        stations: Vec<String>,
    },
    /// Disable an account: it cannot sign in, and its sessions end at once.
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// Set a new password (read from standard input): clears a lockout and ends the account's sessions.
    Reset { name: String },
    /// List the accounts.
    List,
}

#[derive(Subcommand)]
enum KeyAction {
    /// Write a new secret key file (mode 0600) and `<file>.pub`; prints the public key.
    New {
        /// The secret key file to create.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Bench {
    /// Readings/s committed through processor + ledger at batch sizes 1, 100, 1,000, and by SQLite alone.
    Ledger,
    /// p50/p99 of /api/history (24 h and 1 year of one station) and /api/stations with 500 stations on a ledger of
    /// 50.5 M readings (48 stations x 10 parameters x 1 year at 5 min; built once in the temp folder; --readings N
    /// for a smaller one).
    Api,
    /// Lines/s forwarded from the ledger to the InfluxDB write API, against a bare HTTP loop.
    Influx,
    /// SSE fan-out to 500 dashboard clients while ingesting: readings/s and latency to the clients.
    Sse,
    /// The API under 1, 16 and 64 keep-alive clients: requests/s and p50/p99 of /healthz and /api/stations (100
    /// stations live; --seconds per row), and the per-client connection cap.
    Http,
    /// Modbus polling of 100 and 1,000 simulated stations: polls/s, CPU, RSS, ratio to a bare tokio-modbus loop.
    Modbus,
    /// The simulator process that `bench modbus` starts.
    #[value(hide = true)]
    ModbusSim,
    /// Readings/s committed from Mosquitto (QoS 1, 10 readings per message) beside mosquitto_sub's rate.
    Mqtt,
    /// Circular 10 files/s to local FTP and SFTP servers beside bare upload loops (2,000 files, or --readings), and
    /// the observation → upload delay with 100 stations reporting live (--seconds, at least 60).
    Tt10Send,
    /// Export of one year of 5-minute data, 8 stations x 10 parameters: time and peak memory.
    Export,
    /// Latency from a reading's commit to its alert arriving at a local webhook (p50/p99), 1,000 notifications.
    Alerts,
    /// Re-deriving compliance events for a 6 h backlog of 100 stations x 10 parameters arriving newest first.
    Backlog,
    /// The whole daemon: publishers -> Mosquitto -> `quantrac run` -> VictoriaMetrics, realistic and harsh streams
    /// (--readings per burst, default 500,000; --bursts, --stations, --compare, --stream, --idle): readings/s end to
    /// end, CPU per reading by thread, RSS; mosquitto_sub and a bare VictoriaMetrics loop as bounds.
    E2e,
    /// Sustained publishing into `quantrac run` (--minutes, --rate, --stations, --compare): RSS every 10 s and its
    /// slope, errors, and every reading in the ledger and VictoriaMetrics at the end.
    Soak,
}

fn main() -> ExitCode {
    quantrac::allocator::tune();
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Run { config } => run_command(config),
        Command::Demo {
            ledger,
            http,
            mqtt_port,
            modbus_port,
        } => demo(
            &ledger,
            quantrac::config::demo::DemoPorts {
                http: Some(http),
                mqtt: mqtt_port,
                modbus: modbus_port,
            },
        ),
        Command::Ingest { config, batch } => ingest(&config, batch),
        Command::Backup { config, to } => backup(&config, &to),
        Command::Healthcheck { url, timeout } => runtime().block_on(healthcheck(&url, timeout)),
        Command::Export(args) => {
            let config = load_source(&args.source);
            with_loaded(config, |config| export(config, args))
        }
        Command::Verify { dir, key } => verify(&dir, key.as_deref()),
        Command::ExportKey {
            action: KeyAction::New { out },
        } => new_export_key(&out),
        Command::Report(args) => {
            let config = load_source(&args.source);
            with_loaded(config, |config| report(config, args))
        }
        Command::Token {
            action: TokenAction::New { role, name },
        } => new_token(&role, &name),
        Command::User { config, action } => match Config::load(&config) {
            Ok(c) => user_command(&c, action),
            Err(e) => config_failed(&e),
        },
        Command::Bench {
            what,
            readings,
            url,
            seconds,
            e2e,
        } => bench(what, readings, url, seconds, e2e),
    }
}

/// `quantrac user …`: one account operation on the config's ledger, audited as the operating-system user.
fn user_command(config: &Config, action: UserAction) -> ExitCode {
    use quantrac::accounts::{self, Actor, Change, NewAccount};
    let path = &config.ledger.path;
    let mut w = match quantrac::ledger::SideWriter::open_for_accounts(path) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let who = format!(
        "{} (command line)",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let by = |action: &'static str| Actor {
        who: &who,
        role: "admin",
        action,
    };
    let result = match &action {
        UserAction::Add {
            name,
            role,
            stations,
        } => (|| {
            let role = accounts::parse_role(role)?;
            let scope = accounts::parse_scope(stations)?;
            accounts::check_name(name)?;
            let password = read_password(&format!("Password for {name}"))?;
            let a = NewAccount {
                name,
                role,
                scope: scope.clone(),
                password: &password,
            };
            accounts::add(&mut w, by("quantrac user add"), &a)?;
            println!("added {name} ({}, stations {scope})", role.as_str());
            Ok(())
        })(),
        UserAction::Disable { name } | UserAction::Enable { name } => {
            let off = matches!(action, UserAction::Disable { .. });
            let c = Change {
                disabled: Some(off),
                ..Change::default()
            };
            let verb = if off { "disable" } else { "enable" };
            accounts::change(
                &mut w,
                by(if off {
                    "quantrac user disable"
                } else {
                    "quantrac user enable"
                }),
                name,
                &c,
            )
            .map(|()| {
                println!(
                    "{name}: {verb}d{}",
                    if off {
                        "; their sessions have ended"
                    } else {
                        ""
                    }
                )
            })
        }
        UserAction::Reset { name } => (|| {
            let password = read_password(&format!("New password for {name}"))?;
            let c = Change {
                password: Some(&password),
                ..Change::default()
            };
            accounts::change(&mut w, by("quantrac user reset"), name, &c)?;
            println!("{name}: password set, lockout cleared; their sessions have ended");
            Ok(())
        })(),
        UserAction::List => accounts::list(&w).map(|users| {
            for u in users {
                let state = match (u.disabled, u.locked_until) {
                    (true, _) => "disabled".to_string(),
                    (false, Some(t)) => format!("locked until {}", quantrac::model::Timestamp(t)),
                    (false, None) => "active".to_string(),
                };
                println!("{}\t{}\t{}\t{state}", u.name, u.role, u.stations.join(","));
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ accounts::AccountsError::Ledger(_)) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// A password from standard input: on a terminal, asked for (not echoed) twice; otherwise the first line.
fn read_password(prompt: &str) -> Result<String, quantrac::accounts::AccountsError> {
    use quantrac::accounts::AccountsError;
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let terminal = std::io::stdin().is_terminal();
    let read = |ask: &str| -> Result<String, AccountsError> {
        if terminal {
            eprint!("{ask} (not shown): ");
            let _ = std::io::stderr().flush();
            echo(false);
        }
        let mut line = String::new();
        let got = std::io::stdin().lock().read_line(&mut line);
        if terminal {
            echo(true);
            eprintln!();
        }
        got.map_err(|e| {
            AccountsError::Password(format!("cannot read the password from standard input: {e}"))
        })?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    };
    let password = read(prompt)?;
    if password.is_empty() {
        return Err(AccountsError::Password(
            "no password given on standard input; type it at the prompt or pipe it in (echo … | quantrac user …)".into(),
        ));
    }
    if terminal && read("Again")? != password {
        return Err(AccountsError::Password("the two passwords differ".into()));
    }
    Ok(password)
}

/// Turn the terminal's echo off or on (`stty`), so a typed password is not shown.
fn echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}

/// The config a [`ConfigSource`] names: the file, or the demo's with its ledger in the current folder.
fn load_source(source: &ConfigSource) -> Result<Config, quantrac::config::ConfigError> {
    use quantrac::config::demo;
    match &source.config {
        Some(path) if !source.demo => Config::load(path),
        _ => {
            let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            let ledger = demo::demo_ledger(source.ledger.as_deref(), &base);
            demo::demo_config(&ledger, &base, &demo::DemoPorts::default())
        }
    }
}

/// Run `command` with a loaded config; a config error is reported and exits 2.
fn with_loaded(
    config: Result<Config, quantrac::config::ConfigError>,
    command: impl FnOnce(&Config) -> ExitCode,
) -> ExitCode {
    match config {
        Ok(c) => command(&c),
        Err(e) => config_failed(&e),
    }
}

/// `quantrac run`: the daemon on a config file, reloaded on SIGHUP.
fn run_command(path: PathBuf) -> ExitCode {
    match Config::load(&path) {
        Ok(c) => run(c, Some(path)),
        Err(e) => config_failed(&e),
    }
}

/// `quantrac demo`: the embedded demo config with the given ledger file and ports, and an operator token for
/// this run printed on standard output (the dashboard's Acknowledge asks for it).
fn demo(ledger: &Path, ports: quantrac::config::demo::DemoPorts) -> ExitCode {
    let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match quantrac::config::demo::demo_config(ledger, &base, &ports) {
        Ok(mut c) => {
            demo_webhook(&mut c);
            if let Err(code) = demo_operator(&mut c) {
                return code;
            }
            run(c, None)
        }
        Err(e) => config_failed(&e),
    }
}

/// A random operator token admitted for this run only (its hash is kept in memory, never written), printed once on
/// standard output with where to use it.
fn demo_operator(c: &mut Config) -> Result<(), ExitCode> {
    use quantrac::config::http::{Role, Token};
    use sha2::Digest as _;
    let (token, _) = quantrac::http::auth::new_token().map_err(|e| {
        eprintln!("cannot read random bytes from the operating system: {e}");
        ExitCode::FAILURE
    })?;
    c.http.tokens.push(Token {
        name: "demo-operator".into(),
        role: Role::Operator,
        sha256: sha2::Sha256::digest(token.as_bytes()).into(),
        scope: quantrac::config::scope::StationScope::all(),
    });
    println!(
        "Operator token for this run (paste it when the dashboard's Acknowledge asks): {token}\nLedger: {}",
        c.ledger.path.display()
    );
    Ok(())
}

/// `quantrac ingest`: JSON lines from standard input through the pipeline.
fn ingest(path: &Path, batch: usize) -> ExitCode {
    match Config::load(path) {
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
    }
}

/// `quantrac backup`: an online copy of the config's ledger into a new file.
fn backup(path: &Path, to: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return config_failed(&e),
    };
    if to.exists() {
        eprintln!("{} exists; choose a new file for the backup", to.display());
        return ExitCode::from(2);
    }
    match quantrac::ledger::backup(&config.ledger.path, to) {
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

/// `quantrac export-key new`: a new Ed25519 key pair for signing exports.
fn new_export_key(out: &Path) -> ExitCode {
    match quantrac::export::manifest::write_new_key(out) {
        Ok(public) => {
            println!("secret key written to {} (keep it safe)", out.display());
            println!(
                "public key (give it to auditors; also in {}.pub): {public}",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The folder of a report's data when `--data` is not given: beside the report, `<name>-data`.
fn report_data_dir(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or_else(|| "report".into(), |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}-data"))
}

/// `quantrac report`: a plant's monthly report as one HTML file, and the export it cites.
fn report(config: &Config, args: ReportArgs) -> ExitCode {
    use quantrac::export::{self, report};
    let data = args.data.unwrap_or_else(|| report_data_dir(&args.out));
    let sign = match args.sign.map(|k| export::manifest::read_signing_key(&k)) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            eprintln!("--sign: {e}");
            return ExitCode::from(2);
        }
    };
    let request = report::Request {
        station: &args.station,
        month: &args.month,
        now: quantrac::model::Timestamp::now(),
    };
    match report::write(config, request, &args.out, &data, sign) {
        Ok(made) => {
            println!("report written to {}", args.out.display());
            match made.export {
                Some(e) => {
                    println!("its data: {} ({} files)", data.display(), e.files);
                    println!("MANIFEST SHA-256: {}", e.manifest_sha256);
                }
                None => println!("no data exported: the month has not begun"),
            }
            ExitCode::SUCCESS
        }
        Err(e @ export::ExportError::Query(_)) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("report failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `quantrac token new`: a random API token and the config lines that admit it.
fn new_token(role: &str, name: &str) -> ExitCode {
    if quantrac::config::http::Role::parse(role).is_none() {
        eprintln!("unknown role {role:?}; expected one of viewer, operator, auditor, admin");
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

/// `quantrac bench …`: run one measurement and print its numbers.
fn bench(
    what: Bench,
    readings: Option<usize>,
    url: Option<String>,
    seconds: u64,
    e2e: E2eArgs,
) -> ExitCode {
    use quantrac::bench;
    let api_readings = readings.unwrap_or(bench::api::FULL);
    let e2e_options = bench::e2e::Options {
        readings: readings.unwrap_or(500_000),
        bursts: e2e.bursts.max(1),
        stations: e2e.stations.max(1),
        compare: e2e.compare.clone(),
        streams: match e2e.stream.as_deref() {
            Some("realistic") => vec![bench::e2e::Stream::Realistic],
            Some(_) => vec![bench::e2e::Stream::Harsh],
            None => vec![bench::e2e::Stream::Realistic, bench::e2e::Stream::Harsh],
        },
        idle: std::time::Duration::from_secs(e2e.idle),
    };
    let soak_options = bench::soak::Options {
        minutes: e2e.minutes,
        rate: e2e.rate.max(10),
        stations: e2e.stations.max(1),
        compare: e2e.compare,
    };
    let readings = readings.unwrap_or(200_000);
    runtime().block_on(async {
        let result = match what {
            Bench::Api => bench::api::run(api_readings).await,
            Bench::Ledger => bench::ledger::run(readings).await,
            Bench::Influx => bench::influx::run(readings, url).await,
            Bench::Sse => bench::sse::run(500, seconds).await,
            Bench::Http => bench::http::run(seconds).await,
            Bench::Modbus => bench::modbus::run(seconds)
                .await
                .map_err(|e| e.to_string().into()),
            Bench::ModbusSim => bench::modbus_sim::serve_sim()
                .await
                .map_err(|e| e.to_string().into()),
            Bench::Mqtt => bench::mqtt::run(readings).await,
            Bench::Export => bench::export::run().await,
            Bench::Alerts => bench::alerts::run(readings.min(1000)).await,
            Bench::Backlog => bench::backlog::run().await,
            Bench::E2e => bench::e2e::run(e2e_options)
                .await
                .map_err(|e| e.to_string().into()),
            Bench::Soak => bench::soak::run(soak_options)
                .await
                .map_err(|e| e.to_string().into()),
            Bench::Tt10Send => {
                bench::tt10_send::run_bench(readings.min(2000), seconds.max(60)).await
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("benchmark failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `quantrac export`: the compliance history of stations for a period into a new folder.
fn export(config: &Config, args: ExportArgs) -> ExitCode {
    use quantrac::export::{self, Format, Options, Query};
    let ExportArgs {
        source: _,
        station: stations,
        from,
        to,
        format,
        out,
        sign,
        exported_at,
    } = args;
    let tz = config.timezone;
    let bad = |m: String| {
        eprintln!("{m}");
        ExitCode::from(2)
    };
    let (from, to) = match (export::parse_time(&from, tz), export::parse_time(&to, tz)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) => return bad(format!("--from: {e}")),
        (_, Err(e)) => return bad(format!("--to: {e}")),
    };
    let Some(format) = Format::parse(&format) else {
        return bad(format!(
            "--format: unknown format {format:?}; expected one of {}",
            Format::NAMES
        ));
    };
    let exported_at = match exported_at.map(|t| export::parse_time(&t, tz)) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => return bad(format!("--exported-at: {e}")),
    };
    let sign = match sign.map(|k| export::manifest::read_signing_key(&k)) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => return bad(format!("--sign: {e}")),
    };
    let query = Query {
        stations,
        from,
        to,
        format,
    };
    let started = std::time::Instant::now();
    match export::export(config, &query, &out, &Options { exported_at, sign }) {
        Ok(r) => {
            println!(
                "exported {} readings into {} files ({} TT10 files) in {} in {:.1} s; MANIFEST lists them",
                r.readings,
                r.files,
                r.tt10_files,
                out.display(),
                started.elapsed().as_secs_f64()
            );
            println!("MANIFEST SHA-256: {}", r.manifest_sha256);
            ExitCode::SUCCESS
        }
        Err(e @ export::ExportError::Query(_)) => bad(e.to_string()),
        Err(e) => {
            eprintln!("export failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn verify(dir: &Path, key: Option<&str>) -> ExitCode {
    use quantrac::export::manifest;
    let key = match key.map(manifest::read_verifying_key) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            eprintln!("--key: {e}");
            return ExitCode::from(2);
        }
    };
    // An archive from `GET /api/export`: unpack it into a temporary folder first.
    let mut unpacked = None;
    let dir = if dir.is_file() {
        let tmp = std::env::temp_dir().join(format!("quantrac-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        match quantrac::export::tar::unpack(dir, &tmp) {
            Ok(top) => {
                unpacked = Some(tmp);
                top
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                eprintln!("{}: not an export archive: {e}", dir.display());
                return ExitCode::from(2);
            }
        }
    } else {
        dir.to_path_buf()
    };
    let result = manifest::verify(&dir, key.as_ref());
    if let Some(tmp) = unpacked {
        let _ = std::fs::remove_dir_all(tmp);
    }
    match result {
        Ok(v) if v.problems.is_empty() => {
            println!(
                "OK: {} files match the MANIFEST ({}; exported at {})",
                v.files_checked,
                v.query.as_deref().unwrap_or("no query recorded"),
                v.exported_at.as_deref().unwrap_or("?")
            );
            match (&v.signed_by, key) {
                (Some(k), Some(_)) => println!("signed by the given key {k}"),
                (Some(k), None) => {
                    println!("signed by key {k} (give --key to check it is the key you expect)")
                }
                (None, _) => println!("not signed"),
            }
            ExitCode::SUCCESS
        }
        Ok(v) => {
            for p in &v.problems {
                println!("FAILED: {p}");
            }
            println!(
                "{} problems; {} files match",
                v.problems.len(),
                v.files_checked
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `QUANTRAC_DEMO_WEBHOOK=<url>` (and optionally `QUANTRAC_DEMO_WEBHOOK_SECRET`): the demo also posts the drifting
/// plant's alerts to that webhook, beside the log.
fn demo_webhook(c: &mut Config) {
    use quantrac::alert::channels::{webhook, Channel, ChannelKind};
    let Ok(url) = std::env::var("QUANTRAC_DEMO_WEBHOOK") else {
        return;
    };
    c.alert.channels.push(Channel {
        name: "demo-webhook".into(),
        kind: ChannelKind::Webhook(webhook::Settings {
            url: quantrac::config::Secret::new(url),
            secret: std::env::var("QUANTRAC_DEMO_WEBHOOK_SECRET")
                .ok()
                .map(quantrac::config::Secret::new),
        }),
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

/// Run the daemon; with the config file's `path`, SIGHUP reloads it (without, SIGHUP is ignored with a warning).
fn run(config: Config, path: Option<PathBuf>) -> ExitCode {
    runtime().block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(quantrac::signals::shutdown_on_signal(shutdown.clone()));
        let mut requests = quantrac::signals::reload_requests();
        let reload = match path {
            Some(path) => Some(quantrac::reload::Reload { path, requests }),
            None => {
                tokio::spawn(async move {
                    while requests.recv().await.is_some() {
                        tracing::warn!("SIGHUP ignored: the demo runs on its embedded config; restart it to change anything.");
                    }
                });
                None
            }
        };
        match daemon::run_with_reload(config, reload, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(daemon::DaemonError::Config(e)) => config_failed(&e),
            Err(e) => {
                tracing::error!(error = %e, "quantrac stopped on an error.");
                ExitCode::FAILURE
            }
        }
    })
}

async fn healthcheck(url: &str, timeout: u64) -> ExitCode {
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout.max(1)))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("healthcheck: {url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config_failed(e: &quantrac::config::ConfigError) -> ExitCode {
    for line in e.lines() {
        eprintln!("{line}");
    }
    ExitCode::from(2)
}

fn check_config(path: &Path) -> ExitCode {
    let (config, limits) = match quantrac::reload::load_checked(path) {
        Ok(c) => c,
        Err(e) => return config_failed(&e),
    };
    // Written at once at the end: a reader that stops early (`| head`) is no error.
    let mut out = String::new();
    out_line!(
        out,
        "{}: {} stations, time zone {}, ledger {}",
        path.display(),
        config.stations.len(),
        config.timezone_name,
        config.ledger.path.display()
    );
    for l in &config.tt10.landing {
        out_line!(
            out,
            "TT10 landing folder: {} (processed: {}, rejected: {})",
            l.display(),
            config.tt10.processed_dir(l).display(),
            config.tt10.rejected_dir(l).display()
        );
    }
    for s in &config.stations {
        out.push('\n');
        out_line!(out, "{}  {}", s.id, s.name);
        out_line!(
            out,
            "  zone: {}   profile: {}   design flow: {} m³/day   interval: {}",
            s.zone,
            s.profile,
            s.design_flow_m3_day,
            humantime::format_duration(s.interval)
        );
        let sources = s.sources();
        out_line!(
            out,
            "  sources: {}",
            if sources.is_empty() {
                "TT10 files only".to_string()
            } else {
                sources.join(", ")
            }
        );
        for line in limits
            .get(&s.id)
            .map(|l| l.timeline_lines(s))
            .unwrap_or_default()
        {
            out_line!(out, "{line}");
        }
    }
    let mut warnings: Vec<String> = quantrac::config::mandatory::check_all(&config.stations)
        .iter()
        .map(|w| w.to_string())
        .collect();
    warnings.extend(config.alert_link_warning());
    if !warnings.is_empty() {
        out.push('\n');
        out_line!(
            out,
            "{} warnings (the config is valid; the rules ask for more):",
            warnings.len()
        );
        for w in &warnings {
            out_line!(out, "warning: {w}");
        }
    }
    print_out(&out)
}

/// Append one line to `out` (formatting into a String cannot fail).
macro_rules! out_line {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}
use out_line;

/// Print `out`; a closed pipe (`| head`) ends quietly with success, any other write error fails.
fn print_out(out: &str) -> ExitCode {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing the output failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to standard error, with colours only when it is a terminal (a redirected log file stays plain text).
fn init_logging(format: LogFormat, filter: &str) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
