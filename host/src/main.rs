//! The `rustsink` command.

fn main() -> std::process::ExitCode {
    rustsink::cli::main()
}
