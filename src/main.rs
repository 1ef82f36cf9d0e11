//! The `trellis` binary; everything it does is wired in `trellis_gateway::cli`.

fn main() -> std::process::ExitCode {
    trellis_gateway::cli::main()
}
