//! Command-line interface: `tugboat crds`, and later `run` and `render`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// tugboat deploys applications from Git and redeploys them when a webhook is called.
#[derive(Parser, Debug)]
#[command(name = "tugboat", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions (apply them with `tugboat crds | kubectl apply -f -`).
    Crds,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => match tugboat::crds::to_yaml_stream() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: cannot render the CRDs: {error}");
                ExitCode::FAILURE
            }
        },
    }
}
