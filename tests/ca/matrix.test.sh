#!/usr/bin/env bash
# The CA suite (tests/ca/suite.test.sh, SQLite) with a local store served by Nix 2.26:
# in a private mount namespace a fresh directory is /nix for this host and the /nix of
# the Debian 13 tree (tests/harness/nixtree.sh), whose nix-daemon serves it; sluice runs
# with `store = daemon`, every drv is instantiated by the tree's nix-instantiate through
# that daemon, and the host's Nix 2.8 tools reach the store through it too.  The oracle
# is the tree's Nix 2.26 in its own store (2.26 and 2.8 give different paths to CA
# outputs that refer to themselves).
source "$(dirname "$0")/../harness/env.sh"
need_nix
[ "$(id -u)" = 0 ] || skip "needs root (mount namespaces, chroot)"
TREE=$(bash "$ROOT/tests/harness/nixtree.sh" dir trixie)
[ -f "$TREE/.sluice-tree" ] || skip "no Nix tree $TREE (tests/harness/nixtree.sh ensure trixie)"

if [ -z "${SLUICE_MATRIX_NIX:-}" ]; then
    mkdir -p "$T/nix/store" "$T/nix/var/nix" "$T/bin"
    # nix-instantiate: the tree's, through the daemon; the oracle: the tree's Nix in its
    # own store (Nix 2.26 gives other paths than 2.8 to CA outputs that refer to
    # themselves, so the oracle must be the release of the store under test)
    cat >"$T/bin/nix-instantiate" <<EOS
#!/bin/sh
n=\$#; i=0
while [ \$i -lt \$n ]; do
    a=\$1; shift; i=\$((i + 1))
    case \$a in "$ROOT"/*) a=/mnt\${a#"$ROOT"} ;; esac
    set -- "\$@" "\$a"
done
[ -n "\${ORACLE_DIR:-}" ] || exec chroot "$TREE" env NIX_REMOTE=daemon /usr/bin/nix-instantiate "\$@"
exec unshare --mount --propagation private sh -c 'mount --bind "\$ORACLE_DIR" "$TREE/nix" &&
    exec chroot "$TREE" env -u NIX_REMOTE PATH=/usr/bin:/bin "\$@"' sh "\$@"
EOS
    chmod +x "$T/bin/nix-instantiate"
    cp "$T/bin/nix-instantiate" "$T/oracle" # ORACLE_DIR=DIR oracle CMD...: CMD in the oracle store
    SLUICE_MATRIX_NIX=$T/nix SLUICE_MATRIX_BIN=$T/bin unshare --mount --propagation private \
        bash -c 'mount --bind "$SLUICE_MATRIX_NIX" /nix && exec bash "$0"' "$0"
    exit $?
fi

# inside: the tree sees this /nix, /proc, /dev, /tmp and the source tree (at /mnt)
mount --bind /nix "$TREE/nix"
mount -t proc proc "$TREE/proc"
mount --rbind /dev "$TREE/dev"
mount --bind /tmp "$TREE/tmp"
mount --bind "$ROOT" "$TREE/mnt"
chroot "$TREE" env -i PATH=/usr/bin:/bin nix-daemon </dev/null >"$T/daemon.log" 2>&1 &
DAEMON=$!
prev_trap=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//; s/'\\\\''/'/g")
# shellcheck disable=SC2064
trap "m_rc=\$?; kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null; (exit \$m_rc); $prev_trap" EXIT
for _ in $(seq 100); do [ -S /nix/var/nix/daemon-socket/socket ] && break; sleep 0.05; done
[ -S /nix/var/nix/daemon-socket/socket ] || fail "the Nix 2.26 daemon did not start: $(cat "$T/daemon.log")"
export NIX_REMOTE=daemon PATH=$SLUICE_MATRIX_BIN:$PATH
v=$(nix store ping 2>&1 | sed -n 's/^Version: //p')
assert_eq "$v" "$(cat "$TREE/.sluice-tree")" "the local store's daemon"
printf 'store = daemon\n' >"$T/sluice.conf"
export SLUICE_CONFIG=$T/sluice.conf SLUICE_ORACLE_WRAP=$SLUICE_MATRIX_BIN/../oracle
SLUICE_TEST_BACKENDS=${SLUICE_TEST_BACKENDS:-sqlite} bash "$ROOT/tests/ca/suite.test.sh"
