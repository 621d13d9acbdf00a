//! Finding an installed server binary: on `PATH`, else in the Debian locations.

use std::path::PathBuf;

const FALLBACK_DIRS: [&str; 3] = ["/usr/sbin", "/usr/bin", "/usr/local/bin"];

/// The path of `name`, or a panic telling how to install it (`package` is its apt package).
pub fn find(name: &str, package: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found on PATH or in {}: install it (apt-get install {package})",
                FALLBACK_DIRS.join(", ")
            )
        })
}
