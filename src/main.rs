//! The `trellis` binary; everything it does is wired in `trellis_gateway::cli`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    trellis_gateway::cli::main()
}
