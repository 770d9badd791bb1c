//! Compiles the BPF programs and generates their Rust skeletons: the
//! tool's, and the floors `make bench` measures it against.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

/// (source, skeleton file)
const OBJECTS: [(&str, &str); 2] = [
    ("bpf/kernel_delay.bpf.c", "kernel_delay.skel.rs"),
    ("benches/bpf/floors.bpf.c", "floors.skel.rs"),
];

fn vmlinux_dir() -> &'static str {
    match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "vmlinux/arm64",
        _ => "vmlinux/x86",
    }
}

/// The architecture as bpf_tracing.h and the programs' #ifs name it.
fn target_arch_define() -> &'static str {
    match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "-D__TARGET_ARCH_arm64",
        _ => "-D__TARGET_ARCH_x86",
    }
}

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (source, skeleton) in OBJECTS {
        SkeletonBuilder::new()
            .source(source)
            .clang_args([
                "-I",
                vmlinux_dir(),
                "-I",
                "bpf",
                target_arch_define(),
                "-Wall",
                "-Werror",
            ])
            .build_and_generate(out_dir.join(skeleton))
            .unwrap_or_else(|err| {
                panic!("building the BPF skeleton of {source} failed (is clang installed?): {err}")
            });
    }
    // The test workload (a crate of its own), for the end-to-end tests and
    // the bench: built into the same target directory and profile as this
    // build, whose OUT_DIR is <target>/<profile>/build/<package>-<hash>/out.
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is under the profile's directory");
    println!(
        "cargo:rustc-env=KD_WORKLOAD={}",
        profile_dir.join("kd-workload").display()
    );
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed=benches/bpf");
    println!("cargo:rerun-if-changed={}", vmlinux_dir());
}
