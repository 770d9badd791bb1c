//! Compiles the BPF programs and generates their Rust skeleton.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SOURCE: &str = "bpf/kernel_delay.bpf.c";

fn vmlinux_dir() -> &'static str {
    match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "vmlinux/arm64",
        _ => "vmlinux/x86",
    }
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("kernel_delay.skel.rs");
    SkeletonBuilder::new()
        .source(SOURCE)
        .clang_args(["-I", vmlinux_dir(), "-I", "bpf", "-Wall", "-Werror"])
        .build_and_generate(&out)
        .expect("building the BPF skeleton failed (is clang installed?)");
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed={}", vmlinux_dir());
}
