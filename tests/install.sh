#!/usr/bin/env bash
# The test of `make install`: into a staging directory (DESTDIR), the
# binary runs, the man page renders without warnings, and each shell loads
# its completions and completes an option; and `cargo install` installs the
# tool alone (not the test workload). Removes what it made, failed or not.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "install test: FAIL: $*" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

make -s install DESTDIR="$stage" PREFIX=/usr >/dev/null
root=$stage/usr
version=$("$root/bin/kernel-delay" --version) || fail "the installed binary does not run"
[[ $version == "kernel-delay "* ]] || fail "--version printed: $version"

page=$root/share/man/man8/kernel-delay.8
warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
[[ -z $warnings ]] || fail "the man page renders with warnings: $warnings"
rendered=$(MANWIDTH=80 MANPAGER=cat man -l "$page" 2>/dev/null)
for section in NAME SYNOPSIS DESCRIPTION OPTIONS EXAMPLES "EXIT STATUS" "SEE ALSO"; do
    grep -q "^$section\$" <<<"$rendered" || fail "the man page has no $section section"
done

# bash: what the completion function offers for `kernel-delay --sta`.
offered=$(bash -c 'source "$1"; COMP_WORDS=(kernel-delay --sta); COMP_CWORD=1
    _kernel__delay kernel-delay --sta kernel-delay; echo "${COMPREPLY[*]}"' \
    _ "$root/share/bash-completion/completions/kernel-delay")
[[ $offered == *--start-trigger* ]] || fail "bash offers '$offered' for --sta"
# zsh and fish: the scripts parse, and fish completes the option.
zsh -n "$root/share/zsh/site-functions/_kernel-delay" || fail "zsh cannot read its completions"
offered=$(fish --no-config -c "source $root/share/fish/vendor_completions.d/kernel-delay.fish
    complete -C 'kernel-delay --sta'")
[[ $offered == *--start-trigger* ]] || fail "fish offers '$offered' for --sta"

# cargo install: the tool, and nothing of the tests (the static build's
# target, feature and directory, so nothing is compiled twice).
scripts/static/cargo.sh "$(uname -m)" install --quiet --locked --path . --root "$stage/cargo" \
    --target-dir target
installed=$(ls "$stage/cargo/bin")
[[ $installed == kernel-delay ]] || fail "cargo install installed: $installed"
echo "install test: OK (binary, man page, bash, zsh and fish completions; cargo install: kernel-delay alone)"
