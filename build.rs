//! Links the unwinder statically into the dynamically linked herd, so that
//! the binary needs nothing but libc at run time.
//!
//! Rust's std asks the linker for `-lgcc_s` (the unwinder, which herd never
//! runs: it is built with `panic = "abort"`). Loading libgcc_s.so.1 costs
//! about 100 us at every start (measured on the machine of BENCHMARKS.md,
//! a C hello world with and without it), more than the rest of herd's own
//! start-up. A linker script named `libgcc_s.so` in a search directory that
//! comes before the system's makes the linker take GCC's static unwinder,
//! `libgcc_eh.a`, instead: what `gcc -static-libgcc` does for C programs.
//! Where the C compiler does not know that archive, nothing changes.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let static_build = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|feature| feature == "crt-static");
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" || static_build
    {
        return;
    }
    let compiler = env::var("CC").unwrap_or_else(|_| "cc".into());
    let Ok(printed) = Command::new(compiler)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let archive = String::from_utf8_lossy(&printed.stdout).trim().to_owned();
    // An unknown file is printed back as its bare name.
    if !Path::new(&archive).is_absolute() || !Path::new(&archive).is_file() {
        return;
    }
    let dir = PathBuf::from(var("OUT_DIR")).join("static-unwinder");
    fs::create_dir_all(&dir).expect("creating OUT_DIR/static-unwinder");
    fs::write(dir.join("libgcc_s.so"), format!("INPUT({archive})\n"))
        .expect("writing the libgcc_s.so linker script");
    println!("cargo:rustc-link-search=native={}", dir.display());
}
