//! The `sharecheck` command line: the arguments are in `cli/args.rs`, each command in its own
//! module under `cli/`.

mod cli;

fn main() {
    let cli = cli::args::Cli::from_command_line();
    if let Err(e) = cli::dispatch(cli) {
        eprintln!("sharecheck: error: {e:#}");
        std::process::exit(2);
    }
}
