//! Builds the booking function (`booking-fn/`, a `lambda_runtime` crate with its own workspace)
//! with cargo and packages its binary as `booking-fn/target/lambda/booking-fn/bootstrap`: the
//! folder `trellis.json` gives as the function's `Code.Path`, and where `cargo lambda build`
//! puts it too. `main.rs` does this before it starts Trellis; the tests share it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The booking function's crate.
pub const CRATE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/travel/booking-fn");

/// Builds the function into `target_dir` (by default the crate's own `target/`), copies the
/// binary into the package folder as `bootstrap`, and answers that path. Says what it runs on
/// stderr. `RUSTFLAGS` meant for Trellis's build is not passed on: the function is its own
/// project.
pub fn build(target_dir: Option<&Path>) -> Result<PathBuf, String> {
    let crate_dir = Path::new(CRATE_DIR);
    let target_dir = target_dir.map_or_else(|| crate_dir.join("target"), Path::to_path_buf);
    let manifest = crate_dir.join("Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!(
        "building the booking function: {cargo} build --manifest-path {} --target-dir {}",
        manifest.display(),
        target_dir.display()
    );
    let status = Command::new(&cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the booking function failed ({status}); see cargo's output above"
        ));
    }
    let binary = target_dir.join("debug/booking-fn");
    let package = crate_dir.join("target/lambda/booking-fn");
    let bootstrap = package.join("bootstrap");
    // Copied beside and renamed over, so a worker still running the previous binary keeps it
    // and the next worker starts the new one.
    let partial = package.join(format!(".bootstrap.{}", std::process::id()));
    let copy = || -> std::io::Result<()> {
        std::fs::create_dir_all(&package)?;
        std::fs::copy(&binary, &partial)?;
        std::fs::rename(&partial, &bootstrap)
    };
    copy().map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!(
            "packaging {} as {}: {e}",
            binary.display(),
            bootstrap.display()
        )
    })?;
    eprintln!("packaged it as {}", bootstrap.display());
    Ok(bootstrap)
}
