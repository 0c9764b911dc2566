//! Embeds the web console's built assets (`console/dist`, made by
//! `scripts/console.sh`) into the binary: writes `console_assets.rs` with
//! each file's name, bytes (through `include_bytes!`, so Cargo rebuilds
//! when they change) and an ETag. Without a build the list is empty and the
//! server answers `/` with how to build the console.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dist = manifest.join("console").join("dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = match std::fs::read_dir(&dist) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.is_file())
            .collect::<Vec<_>>(),
        Err(_) => {
            println!(
                "cargo:warning=the web console is not built ({} is missing): run scripts/console.sh, then build again",
                dist.display()
            );
            Vec::new()
        }
    };
    files.sort();
    let mut code = String::from(
        "/// The console's files: name, bytes, ETag.\npub static ASSETS: &[(&str, &[u8], &str)] = &[\n",
    );
    for path in &files {
        let bytes = std::fs::read(path).expect("a file just listed is readable");
        writeln!(
            code,
            "    ({:?}, include_bytes!({:?}), \"\\\"{:016x}\\\"\"),",
            file_name(path),
            path.display().to_string(),
            fnv1a(&bytes)
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("console_assets.rs"), code).expect("OUT_DIR is writable");
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a listed file has a name")
        .to_string_lossy()
        .into_owned()
}

/// FNV-1a: a stable fingerprint of a file's bytes for its ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
