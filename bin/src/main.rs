//! `bosun`: exit status 0 on success, 1 on a runtime error, 2 on a usage error (clap).

use clap::{error::ErrorKind, CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = match bosun_cli::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => usage_error(error),
    };
    let default_level = if matches!(cli.command, bosun_cli::cli::Command::Worker(_)) {
        "info"
    } else {
        "warn"
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_logs())
        .with_writer(std::io::stderr);
    match cli.log_format {
        bosun_cli::cli::LogFormat::Text => logs.init(),
        bosun_cli::cli::LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bosun_cli::commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            if let Some(bosun_cli::commands::Exit(status)) = error.downcast_ref() {
                return std::process::ExitCode::from(*status);
            }
            eprintln!("error: {}", bosun_cli::render::error_report(&error));
            if error.downcast_ref::<bosun_cli::commands::Usage>().is_some() {
                return std::process::ExitCode::from(2);
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Colour in the logs only for a person at a terminal: escape codes in a file or a log
/// collector are noise, and `NO_COLOR` (set and not empty, see no-color.org) turns them off.
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// Print a parse error with the usage of the (sub)command it concerns, and exit with status 2
/// (`--help` and `--version` exit 0 as usual).
fn usage_error(error: clap::Error) -> ! {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        error.exit();
    }
    let error = shorten_echoed_values(error);
    let _ = error.print();
    let rendered = error.render().to_string();
    if !rendered.contains("Usage:") {
        let mut command = bosun_cli::cli::Cli::command();
        command.build();
        let args: Vec<String> = std::env::args().skip(1).collect();
        let sub = args.iter().find_map(|arg| {
            command
                .get_subcommands()
                .find(|s| s.get_name() == arg)
                .map(|s| s.get_name().to_string())
        });
        let usage = match sub.and_then(|name| command.find_subcommand_mut(&name)) {
            Some(sub) => sub.render_usage(),
            None => command.render_usage(),
        };
        eprintln!("\n{usage}");
    }
    std::process::exit(2);
}

/// `error` with the values it echoes from the command line (a bad value, an unknown argument
/// or subcommand) cut as `bosun_queue::shorten` does: a megabyte typed by mistake is not
/// printed back in full.
fn shorten_echoed_values(mut error: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue};
    for kind in [
        ContextKind::InvalidValue,
        ContextKind::InvalidArg,
        ContextKind::InvalidSubcommand,
    ] {
        if let Some(ContextValue::String(value)) = error.get(kind) {
            let short = bosun_queue::shorten(value).into_owned();
            error.insert(kind, ContextValue::String(short));
        }
    }
    error
}
