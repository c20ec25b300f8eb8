//! The `rustsink` command.

fn main() -> std::process::ExitCode {
    rustsink_cli::main()
}
