#!/usr/bin/env bash
# tests/harness/nixtree.sh: Debian trees that carry newer Nix releases, for builder hosts
# and a local daemon store of the test matrix (the machine's own Nix is Debian 12's 2.8).
#
#   nixtree.sh ensure SUITE   create the tree of SUITE when it is absent (debootstrap
#                             --variant=minbase, then nix-bin and openssh-server from
#                             that suite) and print its directory; trixie = Debian 13
#                             (Nix 2.26), sid = Debian unstable (Nix 2.3x)
#   nixtree.sh dir SUITE      print the tree's directory (it may not exist)
#   nixtree.sh version SUITE  print the tree's Nix version ("2.26.3")
#   nixtree.sh run SUITE CMD...  run CMD chrooted in the tree, in a private mount
#                             namespace with /proc, /dev, /dev/pts and /tmp mounted
#
# Trees live in $SLUICE_NIX_TREES (default /var/cache/sluice-nix)/SUITE, so CI runs on
# one machine share them; a tree is built in SUITE.tmp and renamed when complete, under
# a lock, so a half-made tree is never used.  Needs root, debootstrap and the network
# (Debian mirrors) the first time only.
set -euo pipefail
TREES=${SLUICE_NIX_TREES:-/var/cache/sluice-nix}
MIRROR=${SLUICE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
APT=(-o Acquire::Check-Valid-Until=false -o APT::Install-Recommends=false -q)

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

check_suite() {
    case $1 in
    trixie | sid | forky) ;;
    *) echo "nixtree.sh: unknown suite '$1' (trixie, sid)" >&2; exit 2 ;;
    esac
}

complete() { [ -x "$1/usr/bin/nix-store" ] && [ -x "$1/usr/sbin/sshd" ] && [ -f "$1/.sluice-tree" ]; }

# build SUITE DIR: debootstrap into DIR.tmp, install nix-bin, rename to DIR
build() {
    local suite=$1 dir=$2 tmp=$2.tmp
    command -v debootstrap >/dev/null ||
        { echo "nixtree.sh: debootstrap missing (Debian package debootstrap)" >&2; return 1; }
    rm -rf "$tmp"
    mkdir -p "$tmp"
    echo "nixtree.sh: debootstrap $suite into $tmp" >&2
    # debootstrap's mounts (proc, sys) stay in a private mount namespace
    unshare --mount --propagation private \
        debootstrap --variant=minbase --include=openssh-server "$suite" "$tmp" "$MIRROR" \
        >"$tmp.log" 2>&1 || { tail -20 "$tmp.log" >&2; return 1; }
    # nix-bin: debootstrap --include leaves it unconfigured (a virtual perl dependency)
    unshare --mount --propagation private sh -c '
        mount -t proc proc "$1/proc" && shift &&
        exec chroot "$0" sh -c "apt-get $* update && DEBIAN_FRONTEND=noninteractive apt-get $* install -y nix-bin"
    ' "$tmp" "$tmp" "${APT[@]}" >>"$tmp.log" 2>&1 || { tail -20 "$tmp.log" >&2; return 1; }
    rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"* 2>/dev/null || true
    mkdir -p "$tmp/etc/nix"
    printf '%s\n' 'experimental-features = nix-command ca-derivations' 'substituters =' \
        'build-users-group =' 'sandbox = false' 'fsync-metadata = false' >"$tmp/etc/nix/nix.conf"
    unshare --mount --propagation private sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" nix-store --version' \
        "$tmp" | sed 's/.* //' >"$tmp/.sluice-tree"
    [ -s "$tmp/.sluice-tree" ] || { echo "nixtree.sh: no Nix in $tmp" >&2; return 1; }
    rm -rf "$dir"
    mv "$tmp" "$dir"
    mv "$tmp.log" "$dir.log"
}

ensure() {
    local suite=$1 dir=$TREES/$1
    check_suite "$suite"
    if ! complete "$dir"; then
        mkdir -p "$TREES"
        exec 9>"$TREES/.$suite.lock"
        flock 9
        complete "$dir" || build "$suite" "$dir"
        flock -u 9
    fi
    echo "$dir"
}

# run SUITE CMD...: CMD chrooted in the tree (private mounts: /proc, /dev, /dev/pts, /tmp)
run() {
    local dir=$TREES/$1
    shift
    complete "$dir" || { echo "nixtree.sh: no tree $dir (nixtree.sh ensure)" >&2; exit 1; }
    exec unshare --mount --propagation private sh -c '
        d=$0
        mount -t proc proc "$d/proc" && mount --rbind /dev "$d/dev" && mount --bind /tmp "$d/tmp" &&
        exec chroot "$d" "$@"' "$dir" "$@"
}

case ${1:-} in
ensure) [ $# -eq 2 ] || usage; ensure "$2" ;;
dir) [ $# -eq 2 ] || usage; check_suite "$2"; echo "$TREES/$2" ;;
version)
    [ $# -eq 2 ] || usage
    check_suite "$2"
    complete "$TREES/$2" || { echo "nixtree.sh: no tree $TREES/$2" >&2; exit 1; }
    cat "$TREES/$2/.sluice-tree"
    ;;
run) [ $# -ge 3 ] || usage; check_suite "$2"; run "${@:2}" ;;
*) usage ;;
esac
