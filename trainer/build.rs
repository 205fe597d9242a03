//! Records the git commit for `--version`.

#[path = "build/version.rs"]
mod version;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build");
    version::emit(std::path::Path::new(&manifest));
}
