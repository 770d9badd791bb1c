# kernel-delay: `make run` and `make test` do everything on a fresh Debian
# machine (as root, or with sudo for the package install).

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# Build dependencies: clang compiles the BPF C, libelf and zlib are linked
# by libbpf, bpftool regenerates vmlinux.h.
BUILD_PACKAGES := clang libelf-dev zlib1g-dev pkg-config bpftool
# The tests' independent count of interrupts; sys/sdt.h for the USDT
# probes of the trigger tests' workload; man and the shells to check what
# `make install` installs; a server built without frame pointers, and perf
# to unwind its stacks independently.
TEST_PACKAGES := bpftrace systemtap-sdt-dev man-db zsh fish nginx linux-perf python3-venv
# The Perfetto project's Python protobuf classes, to read --perfetto traces.
PERFETTO_VENV := target/perfetto-venv
PERFETTO_PYPI := perfetto==0.59.1
# `make bench`'s real server and its load generator (redis-tools).
BENCH_PACKAGES := redis-server

# Installs the Debian packages named in $(1) that are missing, with
# apt-get install's options $(2).
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(2) $$missing; \
	fi
endef
# Arguments for `make run`; without them, a 3 s demo workload is traced.
ARGS ?=
ARCH_DIR := $(if $(filter aarch64,$(shell uname -m)),arm64,x86)
VMLINUX_H := vmlinux/$(ARCH_DIR)/vmlinux.h
# What builds, lints, tests, installs and benchmarks is the static musl
# binary that ships (scripts/static/cargo.sh): musl-gcc, and what libbpf-sys
# needs to build libelf (elfutils, autotools) from source; `file` and
# readelf (binutils) for `make static`'s check.
STATIC_PACKAGES := musl-tools musl-dev gcc make autoconf automake autopoint libtool \
	flex bison gawk file binutils
MUSL_TARGET := $(shell uname -m)-unknown-linux-musl
STATIC_CARGO := scripts/static/cargo.sh $(shell uname -m)
STATIC_DIR := target/$(MUSL_TARGET)/release
# What ships, and what the tests and VMs run with it.
BUILD_ARGS := build --release --package kernel-delay --package kd-workload
BIN := $(STATIC_DIR)/kernel-delay
WORKLOAD := $(STATIC_DIR)/kd-workload
# `make static-aarch64` (on x86_64): Debian's cross gcc, made a musl one by
# arm64 musl-dev (downloaded by scripts/static/cargo.sh, not installed), and
# qemu-user to run the result here. Built in a target directory of its own.
AARCH64_TARGET := aarch64-unknown-linux-musl
AARCH64_DIR := target/cross/$(AARCH64_TARGET)/release
AARCH64_PACKAGES := gcc-aarch64-linux-gnu qemu-user-static
# `make kernels`: the emulator and the guest's shell and tools.
KERNELS_PACKAGES := qemu-system-x86 qemu-system-arm busybox-static python3 file xz-utils
# Kernel packages for `make kernels` (default: the current Debian 5.10, 6.1 and 6.12).
KERNELS ?=

# `make install`: where, and under which staging directory.
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: deps build run test lint bench install vmlinux vmlinux-arm64 clean static static-aarch64 static-aarch64-build kernels vmtest vmtest-deps vmtest-prepare image

deps:
	$(call apt_install,$(BUILD_PACKAGES) $(STATIC_PACKAGES))
	@command -v cargo >/dev/null || { echo "make: cargo not found: install Rust with rustup"; exit 1; }
	@for c in clippy rustfmt; do rustup component list --installed 2>/dev/null | grep -q "^$$c" || rustup component add $$c; done
	@rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	@[ -f $(VMLINUX_H) ] || $(MAKE) vmlinux

# The static binaries of the tool and of the test workload.
build: deps
	$(STATIC_CARGO) $(BUILD_ARGS)

run: build
	$(SUDO) $(BIN) $(if $(ARGS),$(ARGS),--duration 10 -- $(WORKLOAD) demo 3)

lint: deps
	cargo fmt --all --check
	$(STATIC_CARGO) clippy --release --all-targets -- -D warnings

# The BPF programs' interrupt nesting rule is unit-tested on the host (C);
# the end-to-end tests load BPF programs: root is required. They run one at
# a time so that timing ranges hold on a busy two-core machine.
test: lint build
	$(call apt_install,$(TEST_PACKAGES))
	@mkdir -p target
	@[ -x $(PERFETTO_VENV)/bin/python ] || { python3 -m venv $(PERFETTO_VENV) && \
		$(PERFETTO_VENV)/bin/pip install -q $(PERFETTO_PYPI); }
	$(CC) -Wall -Wextra -Werror -I bpf -o target/irq_nesting_test tests/irq_nesting_test.c
	./target/irq_nesting_test
	$(SUDO) env "PATH=$$PATH" PERFETTO_PYTHON=$(abspath $(PERFETTO_VENV))/bin/python \
		$(STATIC_CARGO) test --release -- --test-threads=1
	tests/install.sh

# The binary, its man page and its shell completions (which the binary
# writes: --generate) under $(DESTDIR)$(PREFIX).
install: build
	install -D -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/kernel-delay
	install -d $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	$(BIN) --generate man > $(DESTDIR)$(PREFIX)/share/man/man8/kernel-delay.8
	$(BIN) --generate bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/kernel-delay
	$(BIN) --generate zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_kernel-delay
	$(BIN) --generate fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/kernel-delay.fish

bench: build
	$(call apt_install,$(BENCH_PACKAGES))
	$(SUDO) env "PATH=$$PATH" $(STATIC_CARGO) bench --bench overhead

# The static binary, checked: `file` says static, it runs, and (as root)
# it traces this machine's kernel (`make test` runs every test with it).
static: build
	$(SUDO) env "PATH=$$PATH" scripts/static/check.sh $(STATIC_DIR)

# The same for aarch64, cross-built on x86_64: the BPF object is compiled for
# arm64 against vmlinux/arm64/vmlinux.h. Checked under qemu-user: static, and
# it runs (`make kernels` traces with it on arm64 kernels).
static-aarch64-build: deps
	$(call apt_install,$(AARCH64_PACKAGES),--no-install-recommends)
	@rustup target list --installed | grep -qx $(AARCH64_TARGET) || rustup target add $(AARCH64_TARGET)
	scripts/static/cargo.sh aarch64 $(BUILD_ARGS)
static-aarch64: static-aarch64-build
	scripts/static/check.sh $(AARCH64_DIR)

# Boots Debian's 5.10, 6.1 and 6.12 amd64 kernels and 6.1 and 6.12 arm64
# kernels under QEMU with the static binaries of their architecture and
# checks their reports there: one PASS/FAIL line per kernel. (Without
# --no-install-recommends, qemu-system-x86/-arm would pull in a GUI.)
kernels: build static-aarch64-build
	$(call apt_install,$(KERNELS_PACKAGES),--no-install-recommends)
	scripts/kernels/run.sh $(KERNELS)

# vmtest itself (danobi/vmtest, pinned in scripts/vmtest/run.sh) on
# vmtest.toml: a kernel built from Debian's linux-source for its kernel mode
# and a Debian image for its image mode, both cached under
# /var/cache/kernel-delay (KERNEL_DELAY_CACHE).
VMTEST_PACKAGES := qemu-system-x86 qemu-guest-agent mmdebstrap extlinux util-linux \
	linux-source-6.12 bc flex bison libssl-dev libelf-dev dwarves cpio gcc make python3
# vmtest-prepare: what `make vmtest` needs but the static binary (CI times
# it apart: on a fresh machine it is the kernel's build).
vmtest-deps:
	$(call apt_install,$(VMTEST_PACKAGES),--no-install-recommends)
vmtest-prepare: vmtest-deps
	$(SUDO) env "PATH=$$PATH:/usr/sbin:/sbin" scripts/vmtest/run.sh --prepare
vmtest: build vmtest-deps
	$(SUDO) env "PATH=$$PATH:/usr/sbin:/sbin" scripts/vmtest/run.sh

# The container image for amd64 and arm64: a manifest list
# localhost/kernel-delay:latest in podman's (root's) store and an OCI archive
# under target/image/, checked by scripts/image/check.sh. (Without
# --no-install-recommends, podman would pull in tools it does not need here.)
IMAGE_PACKAGES := podman
image: build static-aarch64-build
	$(call apt_install,$(IMAGE_PACKAGES),--no-install-recommends)
	$(SUDO) scripts/image/build.sh
	$(SUDO) scripts/image/check.sh

# Regenerates the CO-RE header from the running kernel's BTF (x86 and arm64
# ship in the repository).
vmlinux:
	mkdir -p vmlinux/$(ARCH_DIR)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX_H)

# Regenerates vmlinux/arm64/vmlinux.h on any machine, from the BTF in Debian's
# arm64 kernel package.
vmlinux-arm64: deps
	scripts/vmlinux/arm64.sh

clean:
	cargo clean
