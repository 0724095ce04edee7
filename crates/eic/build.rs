//! Fetches the browser console's front-end packages (xterm.js and its fit
//! addon) from the npm registry, exactly as `console/package-lock.json`
//! pins them (`npm ci` checks each package's integrity hash), so that
//! `server/console/assets.rs` can build them into the binary. Nothing from
//! npm is committed to the repository.

use std::path::Path;
use std::process::Command;

fn main() {
    let console = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    println!("cargo:rerun-if-changed=console/package.json");
    println!("cargo:rerun-if-changed=console/package-lock.json");
    println!("cargo:rerun-if-changed=console/assets");
    let lock = console.join("package-lock.json");
    // npm writes its own copy of the lock when it installs: when that copy
    // matches ours, node_modules holds exactly what the lock pins.
    let installed = console.join("node_modules/.package-lock.json");
    let current = match (std::fs::read(&lock), std::fs::read(&installed)) {
        (Ok(ours), Ok(theirs)) => same_packages(&ours, &theirs),
        _ => false,
    };
    if !current {
        let status = Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .current_dir(&console)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("`npm ci` in {} failed ({s})", console.display()),
            Err(e) => panic!(
                "the console's assets need npm (apt-get install npm), to run `npm ci` in {}: {e}",
                console.display()
            ),
        }
    }
    for file in [
        "node_modules/@xterm/xterm/lib/xterm.js",
        "node_modules/@xterm/xterm/css/xterm.css",
        "node_modules/@xterm/addon-fit/lib/addon-fit.js",
    ] {
        println!("cargo:rerun-if-changed=console/{file}");
    }
}

/// Whether two lock files pin the same packages: the `"packages"` entries
/// other than the root, compared as text of their resolved and integrity
/// lines (enough, as npm writes both from the same lock).
fn same_packages(ours: &[u8], theirs: &[u8]) -> bool {
    let pins = |text: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(text)
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("\"resolved\"") || l.starts_with("\"integrity\""))
            .map(|l| l.trim_end_matches(',').to_owned())
            .collect()
    };
    let (a, b) = (pins(ours), pins(theirs));
    !a.is_empty() && a == b
}
