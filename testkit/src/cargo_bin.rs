//! Workspace binaries for tests that run them as child processes: found next to the running
//! test executable (`target/<profile>/`), built first with `cargo build` (once per test
//! process and binary, a quick no-op when up to date) so a test never runs a stale binary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Set (by the README test command, which builds every target of the workspace first) to use
/// the binaries as they are: building one package alone would resolve other features than the
/// workspace build and compile its dependencies a second time.
pub const PREBUILT_ENV: &str = "TESTKIT_PREBUILT";

/// Binaries already built by this test process.
static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// The path of workspace binary `name`, from the package of the same name.
pub fn cargo_bin(name: &str) -> PathBuf {
    cargo_bin_of(name, name)
}

/// The path of binary `name` of workspace package `package`, built if needed.
pub fn cargo_bin_of(package: &str, name: &str) -> PathBuf {
    let profile_dir = profile_dir();
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let prebuilt = std::env::var_os(PREBUILT_ENV).is_some() && path.is_file();
    if built.insert(name.to_owned()) && !prebuilt {
        build(package, name, &profile_dir);
    }
    assert!(
        path.is_file(),
        "cargo built {name} but {} does not exist",
        path.display()
    );
    path
}

/// `target/<profile>`: the running test executable lives in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot locate the test executable: {e}"));
    let dir = exe
        .parent()
        .unwrap_or_else(|| panic!("{} has no parent directory", exe.display()));
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

fn build(package: &str, name: &str, profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."));
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", package, "--bin", name]);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {name}: {e}"));
    assert!(
        status.success(),
        "cargo build -p {package} --bin {name} failed: {status}"
    );
}
