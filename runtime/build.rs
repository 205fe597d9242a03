//! Records the git commit for `--version`, and builds the inference service's firmware for
//! each board so that an installed `runtime --device qemu` needs no workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "build/version.rs"]
mod version;

/// Board short names, the Rust targets of their firmware and the firmware's names for them (as
/// `device::qemu::Board`).
const BOARDS: [(&str, &str, &str); 5] = [
    ("m0", "thumbv6m-none-eabi", "nrf51"),
    ("m3", "thumbv7m-none-eabi", "lm3s6965"),
    ("m4", "thumbv7em-none-eabihf", "stm32f405"),
    ("m7", "thumbv7em-none-eabihf", "an500"),
    ("m33", "thumbv8m.main-none-eabihf", "an505"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build");
    version::emit(&manifest);
    let workspace = manifest.join("..");
    println!("cargo:rerun-if-env-changed=EMBER_EMBED_FIRMWARE");
    let wanted = std::env::var("EMBER_EMBED_FIRMWARE").map_or(true, |v| v != "0");
    let sources = workspace.join("firmware/Cargo.toml").is_file();
    if sources {
        for path in ["firmware", "Cargo.lock"] {
            println!("cargo:rerun-if-changed={}", workspace.join(path).display());
        }
    }
    for (board, target, name) in BOARDS {
        let elf = match (wanted && sources).then(|| build_service(&workspace, target, name)) {
            Some(Some(path)) => std::fs::read(&path).expect("read the service ELF just built"),
            _ => Vec::new(),
        };
        std::fs::write(out.join(format!("serve-{board}.elf")), elf).expect("write to OUT_DIR");
    }
}

/// Builds the `serve` binary for `target` and the firmware's board `board` into the
/// workspace's `target/firmware` (with no model: the device reads its model file from flash),
/// or explains in a warning why it cannot (the target is not installed) and returns `None`.
fn build_service(workspace: &Path, target: &str, board: &str) -> Option<PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(libdir) = libdir.filter(|d| d.is_dir()) else {
        // Re-run on every build until the target appears (a missing path is always stale).
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join("target/.no-thumb-target").display()
        );
        println!(
            "cargo:warning=target {target} is not installed, so this runtime carries no service firmware for it; run `bash firmware/setup.sh`, then build again"
        );
        return None;
    };
    println!("cargo:rerun-if-changed={}", libdir.display());
    // A separate target folder: the outer build holds the lock on the workspace's own.
    let target_dir = workspace.join("target/firmware");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "-q", "-p", "ember-firmware", "--release"])
        .args(["--bin", "serve", "--target", target]);
    // What the outer cargo sets for this build script must not leak into the firmware's build.
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        // The service built in reads its model from flash, whatever the shell says.
        "EMBER_MODEL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("EMBER_BOARD", board);
    cmd.env("CARGO_TARGET_DIR", &target_dir);
    let output = cmd.output().expect("start cargo to build the firmware");
    if !output.status.success() {
        panic!(
            "building the inference service for {target} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Some(target_dir.join(target).join("release").join("serve"))
}
