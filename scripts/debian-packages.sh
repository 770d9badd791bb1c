# Sourced by scripts/kernels/run.sh and scripts/static/cargo.sh: Debian packages of
# another release or another architecture, downloaded (never installed) with
# apt configurations of their own, so that the machine's apt sources and
# package state are not touched. Expects $root (the repository) and a say()
# function for progress lines.
#
#   debian_apt SUITE ARCH       prints the APT_CONFIG file for SUITE/ARCH
#   debian_resolve PACKAGE      sets $resolved (meta package -> concrete one)
#   debian_download PACKAGE DIR puts PACKAGE's .deb in DIR (and only it)
#
# The last two use the configuration in $APT_CONFIG (unset: the machine's).

debian_work=$root/target/debian

# This machine's release and architecture: the defaults.
debian_host_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
debian_host_arch=$(dpkg --print-architecture)

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# An apt configuration for SUITE (with its security and updates archives)
# and ARCH: sources, lists and cache under target/debian/apt/SUITE-ARCH,
# signed by Debian's archive keyring. The machine's own release and
# architecture need none: the machine's configuration serves them.
debian_apt() {
    local suite=$1 arch=$2 dir=$debian_work/apt/$1-$2
    if [[ $suite == "$debian_host_suite" && $arch == "$debian_host_arch" ]]; then
        return 0
    fi
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    cat >"$dir/sources.list" <<SOURCES
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite-updates main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security $suite-security main
SOURCES
    # APT::Architectures too: otherwise the machine's foreign architectures
    # (dpkg --add-architecture) would be fetched as well.
    cat >"$dir/apt.conf" <<CONF
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::State::Lists "$dir/lists";
Dir::Cache "$dir/cache";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
CONF
    echo "$dir/apt.conf"
}

# apt-get update, once per configuration and run (returns 1 the second
# time: the package really is not there).
debian_updated=()
debian_update() {
    local key=${APT_CONFIG:-default}
    [[ " ${debian_updated[*]} " != *" $key "* ]] || return 1
    say "apt-get update${APT_CONFIG:+ ($APT_CONFIG)}" >&2
    as_root env ${APT_CONFIG:+APT_CONFIG=$APT_CONFIG} apt-get update -qq
    debian_updated+=("$key")
}

# Sets $resolved to the concrete linux-image package that a meta package
# depends on now (mirror versions move); any other package stands for
# itself. Returns 1 if the package is unknown even after an update.
debian_resolve() {
    local package=$1 candidate depends
    candidate=$(apt-cache policy "$package" 2>/dev/null | sed -n 's/^ *Candidate: //p')
    if [[ -z $candidate || $candidate == "(none)" ]]; then
        debian_update || return 1
        candidate=$(apt-cache policy "$package" 2>/dev/null | sed -n 's/^ *Candidate: //p')
        [[ -n $candidate && $candidate != "(none)" ]] || return 1
    fi
    depends=$(apt-cache show "$package=$candidate" |
        sed -n 's/^Depends: \(linux-image-[0-9][^ ,]*\).*/\1/p' | head -1)
    resolved=${depends:-$package}
}

# Downloads PACKAGE's .deb into the empty directory DIR (updating the lists
# once if the mirror has moved on).
debian_download() {
    local package=$1 dir=$2
    # As root, apt would hand the download to its sandbox user _apt, which
    # cannot write here.
    local apt_opts=()
    [[ $(id -u) -ne 0 ]] || apt_opts=(-o APT::Sandbox::User=root)
    if ! (cd "$dir" && apt-get download -qq "${apt_opts[@]}" "$package"); then
        debian_update || return 1
        (cd "$dir" && apt-get download -qq "${apt_opts[@]}" "$package") || return 1
    fi
}
