#!/usr/bin/env bash
# `sluice nar hash` = `nix hash path` and `sluice nar dump` = `nix-store --dump`, byte
# for byte, on trees with every NAR feature (nested and empty directories, empty,
# executable, large and binary files, relative, absolute and dangling symlinks, names
# that sort differently in byte order and in locales, UTF-8 and odd bytes in names), on
# a single file, a single symlink and on store paths; the vector NAR restored from the
# data dir; and the error cases.
source "$(dirname "$0")/../harness/env.sh"
need_nix

D=$T/tree
mkdir -p "$D/a/b/c" "$D/empty-dir" "$D/B"
printf 'upper\n' >"$D/B/x"
: >"$D/a/empty"
printf '#!/bin/sh\necho hi\n' >"$D/a-b"
chmod 755 "$D/a-b"
chmod 700 "$D/a/b" # only the owner's x bit of files matters; dirs have no mode
printf '123456789' >"$D/ab"
ln -s a/empty "$D/a.b"
ln -s /nonexistent/target "$D/dangling"
ln -s ../.. "$D/a/b/c/up"
head -c 300000 /dev/urandom >"$D/a/b/c/big"
printf 'x' >"$D/$(printf 'caf\xc3\xa9')"
printf 'y' >"$D/$(printf 'odd\x01\x7f\xff')"
printf 'z' >"$D/Z" && printf 'z' >"$D/_" && printf 'z' >"$D/~" && printf 'z' >"$D/.hidden"
cp "$D/a-b" "$D/exec-copy" && chmod 744 "$D/exec-copy"
printf 'r' >"$D/ro" && chmod 444 "$D/ro"
printf 'f' >"$T/single-file"
chmod 555 "$T/single-file"
ln -s "$D" "$T/single-link"

some_store_path=$(nix-store --add "$D")
paths=("$D" "$D/a" "$D/a/b/c/big" "$T/single-file" "$T/single-link" "$D/empty-dir" "$some_store_path")
for p in "${paths[@]}"; do
    cmp -s <("$SLUICE" nar dump "$p") <(nix-store --dump "$p") || fail "nar dump $p differs"
done
# every form and algorithm, all paths in one call each
for args in "" --base32 --base16 --base64 --sri "--type md5" "--type sha1" "--type sha512 --base32"; do
    # shellcheck disable=SC2086
    ours=$("$SLUICE" nar hash $args "${paths[@]}") || fail "sluice nar hash $args"
    # shellcheck disable=SC2086
    assert_eq "$ours" "$(nix hash path $args "${paths[@]}")" "nar hash $args"
done
# several paths at once, one line each
assert_eq "$("$SLUICE" nar hash "$D" "$T/single-file")" "$(nix hash path "$D" "$T/single-file")" "two paths"

# the vector NAR: restored by nix-store --restore, dumped by sluice
nix-store --restore "$T/restored" <"$ROOT/tests/data/nix/nar/example.nar"
cmp -s <("$SLUICE" nar dump "$T/restored") "$ROOT/tests/data/nix/nar/example.nar" ||
    fail "dump of the restored vector differs"
assert_eq "$("$SLUICE" nar hash --base32 "$T/restored")" \
    "002k4gb7lk1nsqbzsh8ssrgb1rjdzzjc4mj718lswcch5b7f1szj" "vector hash"

# errors: missing path, unsupported file type (exit 1, message), usage (exit 2)
mkfifo "$T/fifo"
set +e
"$SLUICE" nar hash "$T/missing" 2>"$T/err"; rc1=$?
"$SLUICE" nar dump "$T/fifo" >/dev/null 2>"$T/err2"; rc2=$?
"$SLUICE" nar hash >/dev/null 2>&1; rc3=$?
"$SLUICE" nar dump a b >/dev/null 2>&1; rc4=$?
"$SLUICE" nar hash --type sha3 "$D" >/dev/null 2>&1; rc5=$?
set -e
assert_eq "$rc1 $rc2 $rc3 $rc4 $rc5" "1 1 2 2 2" "exit statuses"
grep -q "No such file" "$T/err" || fail "message: $(cat "$T/err")"
grep -q "unsupported type" "$T/err2" || fail "message: $(cat "$T/err2")"
echo ok
