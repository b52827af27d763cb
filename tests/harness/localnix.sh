# tests/harness/localnix.sh: a local store served by a newer Nix's daemon, for tests of
# the Nix matrix; sourced after env.sh.
#
#   localnix SUITE   (re)run the calling test in a private mount namespace in which a
#                    fresh directory is /nix for this host and the /nix of the Debian
#                    tree SUITE (tests/harness/nixtree.sh: trixie = Nix 2.26), whose
#                    nix-daemon serves it.  The first call runs the test again inside
#                    and exits with its status; inside it returns with:
#                      - NIX_REMOTE=daemon: this host's Nix 2.8 tools reach the store
#                        through the tree's daemon;
#                      - `nix-instantiate` on PATH: the tree's, through the daemon (drvs
#                        are instantiated by the release under test);
#                      - SLUICE_CONFIG: `store = daemon` for sluice;
#                      - $LOCALNIX_ORACLE: `ORACLE_DIR=DIR $LOCALNIX_ORACLE CMD...` runs
#                        the tree's CMD in a private store DIR (as /nix), an oracle of
#                        the same release.
#                    Skips without root or without the tree.
#
# The tree sees this /nix, /proc, /dev, /tmp and the source tree (at /mnt; arguments of
# nix-instantiate under the source tree are rewritten to it).

localnix() {
    local suite=$1 tree
    [ "$(id -u)" = 0 ] || skip "needs root (mount namespaces, chroot)"
    tree=$(bash "$ROOT/tests/harness/nixtree.sh" dir "$suite")
    [ -f "$tree/.sluice-tree" ] || skip "no Nix tree $tree (tests/harness/nixtree.sh ensure $suite)"
    if [ -z "${SLUICE_LOCALNIX_NIX:-}" ]; then
        mkdir -p "$T/nix/store" "$T/nix/var/nix" "$T/bin"
        localnix_wrapper "$tree" >"$T/bin/nix-instantiate"
        chmod +x "$T/bin/nix-instantiate"
        cp "$T/bin/nix-instantiate" "$T/oracle"
        local rc=0
        SLUICE_LOCALNIX_NIX=$T/nix SLUICE_LOCALNIX_BIN=$T/bin unshare --mount --propagation private \
            bash -c 'mount --bind "$SLUICE_LOCALNIX_NIX" /nix && exec bash "$0"' "$0" || rc=$?
        exit $rc
    fi
    mount --bind /nix "$tree/nix"
    mount -t proc proc "$tree/proc"
    mount --rbind /dev "$tree/dev"
    mount --bind /tmp "$tree/tmp"
    mount --bind "$ROOT" "$tree/mnt"
    chroot "$tree" env -i PATH=/usr/bin:/bin nix-daemon </dev/null >"$T/daemon.log" 2>&1 &
    LOCALNIX_DAEMON=$!
    local prev_trap
    prev_trap=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//; s/'\\\\''/'/g")
    # shellcheck disable=SC2064
    trap "ln_rc=\$?; kill $LOCALNIX_DAEMON 2>/dev/null; wait $LOCALNIX_DAEMON 2>/dev/null; (exit \$ln_rc); $prev_trap" EXIT
    for _ in $(seq 100); do [ -S /nix/var/nix/daemon-socket/socket ] && break; sleep 0.05; done
    [ -S /nix/var/nix/daemon-socket/socket ] ||
        fail "the Nix daemon of $suite did not start: $(cat "$T/daemon.log")"
    export NIX_REMOTE=daemon PATH=$SLUICE_LOCALNIX_BIN:$PATH
    LOCALNIX_VERSION=$(cat "$tree/.sluice-tree")
    local v
    v=$(nix store ping 2>&1 | sed -n 's/^Version: //p')
    [ "$v" = "$LOCALNIX_VERSION" ] || fail "the local store's daemon is Nix '$v', not $LOCALNIX_VERSION"
    printf 'store = daemon\n' >"$T/localnix.conf"
    export SLUICE_CONFIG=$T/localnix.conf
    export LOCALNIX_ORACLE=$SLUICE_LOCALNIX_BIN/../oracle
    echo "local store: Nix $LOCALNIX_VERSION daemon ($suite tree)"
}

# The nix-instantiate wrapper: the tree's through the daemon, or with ORACLE_DIR set,
# any command of the tree in a private store.
localnix_wrapper() {
    local tree=$1
    cat <<EOS
#!/bin/sh
n=\$#; i=0
while [ \$i -lt \$n ]; do
    a=\$1; shift; i=\$((i + 1))
    case \$a in "$ROOT"/*) a=/mnt\${a#"$ROOT"} ;; esac
    set -- "\$@" "\$a"
done
[ -n "\${ORACLE_DIR:-}" ] || exec chroot "$tree" env NIX_REMOTE=daemon /usr/bin/nix-instantiate "\$@"
exec unshare --mount --propagation private sh -c 'mount --bind "\$ORACLE_DIR" "$tree/nix" &&
    exec chroot "$tree" env -u NIX_REMOTE PATH=/usr/bin:/bin "\$@"' sh "\$@"
EOS
}
