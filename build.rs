//! Records the flags `rustc` compiles this package with (the repository's
//! `.cargo/config.toml`, or whatever replaces them: `RUSTFLAGS`, a user's
//! `target.*.rustflags`) as `SIM_RUSTFLAGS`, so that the instruction-count
//! benchmarks (tests/integration/instructions.rs) can tell a build like the
//! one their baseline was recorded with from one whose code differs for
//! reasons no change to the sources made.

fn main() {
    // Cargo hands build scripts the flags in effect, separated by 0x1f.
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    println!(
        "cargo:rustc-env=SIM_RUSTFLAGS={}",
        flags.replace('\x1f', " ")
    );
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=RUSTFLAGS");
}
