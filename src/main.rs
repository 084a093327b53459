//! The slirp-ns binary: parse the command line, run, exit with the status.

use clap::error::ErrorKind;
use clap::Parser;
use slirp_ns::cli::{version_text, Cli};
use slirp_ns::config::Config;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp) => {
            let _ = write!(std::io::stdout(), "{}", e.render());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line naming the problem, exit 1 as slirp4netns does (clap's default is 2).
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            let problem = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("slirp-ns: {problem} (see --help)");
            return ExitCode::FAILURE;
        }
    };
    if cli.version {
        print!("{}", version_text());
        return ExitCode::SUCCESS;
    }
    let cfg = match Config::from_cli(cli) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match slirp_ns::run::run(cfg) {
        Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(1)),
        Err(e) => {
            eprintln!("slirp-ns: {e}");
            ExitCode::FAILURE
        }
    }
}
