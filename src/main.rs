//! The `ferro` command: `run`, `validate`, `--version`.

use clap::{Parser, Subcommand};
use ferro::app::{self, ConfigSource};
use ferro::telemetry::LogFormat;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ferro: one agent for traces, metrics, logs and profiles.
#[derive(Parser)]
#[command(name = "ferro", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format; overrides `[log] format` in the config.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (with no -c: the embedded default config, for a laptop).
    Run {
        /// Config file (TOML).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Once ready, and after each reload, write the addresses ferro
        /// listens on (telemetry, receivers) to this file as JSON.
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Check a config file without starting anything.
    Validate {
        /// Config file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => match ferro::plan::Config::from_file(&config) {
            Ok(config) => {
                println!("ok: {}", config.summary());
                for note in config.redaction_notes() {
                    println!("  {note}");
                }
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprint!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config, ready_file } => {
            let source = config.map_or(ConfigSource::Embedded, ConfigSource::File);
            let config = match source.load() {
                Ok(config) => config,
                Err(errors) => {
                    eprint!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            give_back_memory();
            app::init_logging(
                &config.log.level,
                cli.log_format.unwrap_or(config.log.format),
            );
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(app::run(source, config, ready_file))
        }
    }
}

/// Has mimalloc give freed memory back to the system every two seconds.
/// It does so only when some thread allocates or collects after the purge
/// delay: without this, a burst (large request bodies, a big scrape) would
/// leave a process that then goes quiet at its peak RSS.
fn give_back_memory() {
    let spawned = std::thread::Builder::new()
        .name("ferro-memory".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(2));
                // SAFETY: purges what mimalloc already scheduled; no pointers given.
                unsafe { libmimalloc_sys::mi_collect(false) };
            }
        });
    if let Err(e) = spawned {
        eprintln!("cannot start the memory collector thread: {e}");
    }
}
