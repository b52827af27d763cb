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
    local i=$1 n
    n=$(ns b$i)
    ip netns del "$n" 2>/dev/null || true
    ip netns add "$n"
    ip -n "$n" link set lo up
    setsid ip netns exec "$n" "$LAB/inns" "$LAB/b$i" /usr/sbin/sshd -D -f "$LAB/sshd_config" \
        </dev/null >"$LAB/b$i.log" 2>&1 &
    echo $! >"$LAB/b$i.pid"
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
