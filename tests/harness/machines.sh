#!/usr/bin/env bash
# tests/harness/machines.sh: builder hosts for tests, each with its own /nix, reached
# over real ssh.  Machine bI is a network namespace (own loopback only) in which sshd
# listens on 127.0.0.1:22, inside a private mount namespace with $SLUICE_LAB/bI
# bind-mounted over /nix.  ssh reaches it through `ProxyCommand ip netns exec NS nc`.
#
#   machines.sh start N     (re)start b1..bN: leftovers of an earlier run of this lab
#                           are killed first and the stores wiped (SLUICE_LAB_KEEP=1
#                           keeps them)
#   machines.sh stop N      kill everything of b1..bN, delete the namespaces
#   machines.sh crash I     kill -9 every process of bI (sshd, nix, builders, and the
#                           ProxyCommand of every ssh connection to it)
#   machines.sh restart I   crash, then start bI again (store kept)
#   machines.sh cut I       network cut: bI's loopback goes down (packets vanish)
#   machines.sh uncut I     network back
#   machines.sh ssh_config  print the ssh_config path (use `ssh -F` / NIX_SSHOPTS="-F ...")
#   machines.sh hostkey     print the base64 of the hosts' public key line (machines file)
#   machines.sh key         print the client identity file
#
# The Nix matrix: SLUICE_LAB_TREES="2:trixie 3:sid" makes b2 and b3 run the Nix of those
# Debian trees (tests/harness/nixtree.sh; Nix 2.26 and 2.3x): sshd and everything it
# runs are chrooted into the tree, with the machine's store as the tree's /nix and the
# lab at /run/sluice-lab.  Other machines run this host's Nix.  The mapping is kept in
# $SLUICE_LAB/bI.tree, so crash/restart keep it.
#
# State lives in $SLUICE_LAB (default /tmp/sluice-lab): keys, sshd/ssh configs, nix.conf
# for the builders, stores bI/, pid files.  Namespace names carry a hash of the lab
# path, so labs in different directories do not collide.
# Needs: iproute2, util-linux (unshare), openssh-server, openssh-client, netcat-openbsd.
set -eu
LAB=${SLUICE_LAB:-/tmp/sluice-lab}
mkdir -p "$LAB"
LAB=$(cd "$LAB" && pwd)
NSP=sl$(printf '%s' "$LAB" | md5sum | cut -c1-8)-

ns() { echo "$NSP$1"; }

setup() {
    # HOME: a builder's shell must not run this host's ~/.bashrc (slow, and not ours)
    mkdir -p /run/sshd "$LAB/nixconf" "$LAB/home"
    [ -f "$LAB/id" ] || ssh-keygen -q -t ed25519 -N '' -C sluice-test -f "$LAB/id"
    [ -f "$LAB/hostkey" ] || ssh-keygen -q -t ed25519 -N '' -C '' -f "$LAB/hostkey"
    cp "$LAB/id.pub" "$LAB/authorized_keys"
    printf '%s\n' 'experimental-features = nix-command ca-derivations' 'substituters =' \
        'build-users-group =' 'sandbox = false' 'fsync-metadata = false' >"$LAB/nixconf/nix.conf"
    cat >"$LAB/sshd_config" <<EOC
ListenAddress 127.0.0.1:22
HostKey $LAB/hostkey
AuthorizedKeysFile $LAB/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
LogLevel ERROR
MaxSessions 100
MaxStartups 100:30:200
SetEnv NIX_CONF_DIR=$LAB/nixconf HOME=$LAB/home
EOC
    cat >"$LAB/inns" <<'EOC'
#!/bin/sh
# inns DIR CMD...: run CMD in a private mount namespace with DIR bind-mounted over /nix
d=$1; shift; mkdir -p "$d/store" "$d/var/nix"
exec unshare --mount --propagation private sh -c 'mount --bind "$0" /nix && exec "$@"' "$d" "$@"
EOC
    chmod +x "$LAB/inns"
    # the same for machines in a Debian tree (paths as seen inside the chroot)
    sed -e "s#$LAB#/run/sluice-lab#g" "$LAB/sshd_config" >"$LAB/sshd_config.tree"
    cat >"$LAB/intree" <<'EOC'
#!/bin/sh
# intree TREE DIR LAB CMD...: CMD chrooted into the Debian tree TREE, in a private mount
# namespace with DIR as the tree's /nix, LAB at /run/sluice-lab, and /proc, /dev, /tmp
t=$1 d=$2 lab=$3; shift 3; mkdir -p "$d/store" "$d/var/nix"
exec unshare --mount --propagation private sh -c '
  t=$0 d=$1 lab=$2; shift 2
  mount --bind "$d" "$t/nix" && mount -t proc proc "$t/proc" && mount --rbind /dev "$t/dev" &&
  mount --bind /tmp "$t/tmp" && mount -t tmpfs tmpfs "$t/run" &&
  mkdir -p "$t/run/sluice-lab" "$t/run/sshd" && mount --bind "$lab" "$t/run/sluice-lab" &&
  exec chroot "$t" "$@"' "$t" "$d" "$lab" "$@"
EOC
    chmod +x "$LAB/intree"
    cat >"$LAB/ssh_config" <<EOC
Host b*
  ProxyCommand ip netns exec $NSP%n nc 127.0.0.1 22
Host *
  User root
  IdentityFile $LAB/id
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  KexAlgorithms curve25519-sha256
EOC
}

kill_machine() {
    local i=$1 n pids
    n=$(ns b$i)
    if [ -f "$LAB/b$i.pid" ]; then
        kill -9 "$(cat "$LAB/b$i.pid")" 2>/dev/null || true
        rm -f "$LAB/b$i.pid"
    fi
    if ip netns list 2>/dev/null | grep -qw "^$n"; then
        # repeat: a dying sshd may still fork
        for _ in 1 2 3; do
            pids=$(ip netns pids "$n" 2>/dev/null || true)
            [ -n "$pids" ] || break
            kill -9 $pids 2>/dev/null || true
            sleep 0.02
        done
    fi
}

wait_up() {
    local n
    n=$(ns b$1)
    for _ in $(seq 1 500); do
        ip netns exec "$n" nc -z 127.0.0.1 22 2>/dev/null && return 0
        sleep 0.01
    done
    echo "machine b$1 did not come up; log:" >&2
    cat "$LAB/b$1.log" >&2 || true
    return 1
}

start_one() {
    local i=$1 n tree=
    n=$(ns b$i)
    ip netns del "$n" 2>/dev/null || true
    ip netns add "$n"
    ip -n "$n" link set lo up
    [ ! -s "$LAB/b$i.tree" ] || tree=$(cat "$LAB/b$i.tree")
    if [ -n "$tree" ]; then
        setsid ip netns exec "$n" "$LAB/intree" "$tree" "$LAB/b$i" "$LAB" \
            /usr/sbin/sshd -D -f /run/sluice-lab/sshd_config.tree </dev/null >"$LAB/b$i.log" 2>&1 &
    else
        setsid ip netns exec "$n" "$LAB/inns" "$LAB/b$i" /usr/sbin/sshd -D -f "$LAB/sshd_config" \
            </dev/null >"$LAB/b$i.log" 2>&1 &
    fi
    echo $! >"$LAB/b$i.pid"
}

# trees I: the tree directory of machine bI from SLUICE_LAB_TREES ("I:SUITE ..."), or ""
tree_of() {
    local e
    for e in ${SLUICE_LAB_TREES:-}; do
        if [ "${e%%:*}" = "$1" ]; then
            bash "$(dirname "$0")/nixtree.sh" dir "${e#*:}"
            return
        fi
    done
}

# machines of this lab that exist now (any number)
existing() {
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^${NSP}b\([0-9][0-9]*\)\$/\1/p"
}

cmd=${1:-}
case "$cmd" in
start)
    N=${2:?start N}
    setup
    for i in $(existing) $(seq 1 "$N"); do
        kill_machine "$i"
        ip netns del "$(ns b$i)" 2>/dev/null || true
    done
    for i in $(seq 1 "$N"); do
        [ "${SLUICE_LAB_KEEP:-0}" = 1 ] || rm -rf "${LAB:?}/b$i"
        mkdir -p "$LAB/b$i/store" "$LAB/b$i/var/nix"
        t=$(tree_of "$i")
        if [ -n "$t" ] && [ ! -x "$t/usr/bin/nix-store" ]; then
            echo "machines.sh: b$i: no tree $t (tests/harness/nixtree.sh ensure)" >&2
            exit 1
        fi
        printf '%s' "$t" >"$LAB/b$i.tree"
        start_one "$i"
    done
    for i in $(seq 1 "$N"); do wait_up "$i"; done
    ;;
stop)
    N=${2:?stop N}
    for i in $(existing) $(seq 1 "$N"); do
        kill_machine "$i"
        ip netns del "$(ns b$i)" 2>/dev/null || true
    done
    ;;
crash)
    kill_machine "${2:?crash I}"
    ;;
restart)
    I=${2:?restart I}
    kill_machine "$I"
    start_one "$I"
    wait_up "$I"
    ;;
cut)
    ip -n "$(ns b${2:?cut I})" link set lo down
    ;;
uncut)
    ip -n "$(ns b${2:?uncut I})" link set lo up
    ;;
ssh_config)
    echo "$LAB/ssh_config"
    ;;
hostkey)
    base64 -w0 <"$LAB/hostkey.pub"
    echo
    ;;
key)
    echo "$LAB/id"
    ;;
*)
    echo "usage: machines.sh start N|stop N|crash I|restart I|cut I|uncut I|ssh_config|hostkey|key" >&2
    exit 2
    ;;
esac
