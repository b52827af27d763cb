#!/usr/bin/env bash
# Installing and running as a service:
#  - `make install PREFIX=/usr DESTDIR=...` puts the binary, the unit (ExecStart at
#    PREFIX), the sysusers file, man pages sluice(1), sluice.conf(5), one per command,
#    the example configuration and the documentation in place; the installed binary
#    runs (--version) and its man pages render;
#  - the unit passes `systemd-analyze verify` and `systemd-analyze security` rates it
#    4.0 or lower (when systemd-analyze is installed);
#  - the man page of each command carries the same options as its --help.
source "$(dirname "$0")/../harness/env.sh"
D=$T/dest
make -C "$ROOT" -s BUILD="$SLUICE_BUILD" PREFIX=/usr DESTDIR="$D" install >"$T/make.log" 2>&1 ||
    fail "make install: $(tail -20 "$T/make.log")"
for f in usr/bin/sluice usr/lib/systemd/system/sluice.service usr/lib/sysusers.d/sluice.conf \
    usr/share/man/man1/sluice.1 usr/share/man/man5/sluice.conf.5 usr/share/man/man1/sluice-build.1 \
    usr/share/man/man1/sluice-drv-show.1 usr/share/doc/sluice/sluice.conf.example \
    usr/share/doc/sluice/OPERATING.md usr/share/doc/sluice/LICENSE; do
    [ -f "$D/$f" ] || fail "make install did not install $f"
done
assert_eq "$("$D/usr/bin/sluice" --version)" "sluice $(cat "$ROOT/VERSION")" "installed binary --version"
grep -q '^ExecStart=/usr/bin/sluice run' "$D/usr/lib/systemd/system/sluice.service" ||
    fail "the installed unit does not start /usr/bin/sluice"
# every command's man page lists the options of its --help
for page in $("$SLUICE" --man-page | grep '^sluice-'); do
    cmd=${page#sluice-}
    # a group's subcommand ("drv-show" is `sluice drv show`): the group lists subcommands
    if "$SLUICE" "${cmd%%-*}" --help 2>/dev/null | grep -q '^subcommands:'; then cmd=${cmd/-/ }; fi
    # shellcheck disable=SC2086
    help=$("$SLUICE" $cmd --help 2>&1) || fail "sluice $cmd --help"
    while read -r opt; do
        grep -qF -- "$(sed 's/-/\\-/g' <<<"$opt")" "$D/usr/share/man/man1/$page.1" ||
            fail "$page.1 lacks option $opt of --help"
    done < <(sed -n 's/^  \(-[^ ,]*\).*/\1/p' <<<"$help" | grep -v -- '^-h$')
done
if command -v man >/dev/null; then
    man -l "$D/usr/share/man/man1/sluice-build.1" 2>/dev/null | grep -q -- "--no-out-link" ||
        fail "sluice-build.1 does not render"
fi
# the example configuration is valid: no warning, no error
"$SLUICE" config --config "$D/usr/share/doc/sluice/sluice.conf.example" >"$T/conf.out" 2>"$T/conf.err" ||
    fail "the example configuration: $(cat "$T/conf.err")"
[ ! -s "$T/conf.err" ] || fail "the example configuration warns: $(cat "$T/conf.err")"

command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed (install checks passed)"
sed "s|^ExecStart=/usr/bin/sluice|ExecStart=$D/usr/bin/sluice|" \
    "$D/usr/lib/systemd/system/sluice.service" >"$T/sluice.service"
systemd-analyze verify --man=no "$T/sluice.service" >"$T/verify.out" 2>&1 || fail "systemd-analyze verify: $(cat "$T/verify.out")"
grep -v -e "Failed to \(prepare\|connect\)" -e "^$" "$T/verify.out" | grep -q . &&
    fail "systemd-analyze verify complains: $(cat "$T/verify.out")"
exposure=$(systemd-analyze security --offline=yes "$T/sluice.service" 2>&1 |
    sed -n 's/.*Overall exposure level for sluice.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "systemd-analyze security gave no rating"
awk -v x="$exposure" 'BEGIN { exit !(x <= 4.0) }' || fail "systemd-analyze security rates the unit $exposure (> 4.0)"
echo "installed; unit exposure $exposure"
