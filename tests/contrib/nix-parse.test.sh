#!/usr/bin/env bash
# The Nix packaging without a nixpkgs checkout (tests/contrib/nix.test.sh evaluates it
# against one): package.nix, flake.nix and the NixOS module parse; the flake has its
# description, inputs and outputs; package.nix takes a nixpkgs package for every library
# the Makefile links (pkg-config modules and -l flags) and lists each in buildInputs,
# so the Nix build finds every header and library.
source "$(dirname "$0")/../harness/env.sh"
need_nix
for f in package.nix flake.nix contrib/nixos/module.nix; do
    nix-instantiate --parse "$ROOT/$f" >/dev/null 2>"$T/parse.err" || fail "$f does not parse: $(cat "$T/parse.err")"
done
ev() { nix-instantiate --eval --strict --json -E "$1" 2>"$T/eval.err" || fail "evaluating: $(cat "$T/eval.err")"; }
assert_eq "$(ev "builtins.attrNames (import $ROOT/flake.nix)")" '["description","inputs","outputs"]' "flake attributes"
assert_eq "$(ev "builtins.attrNames (builtins.functionArgs (import $ROOT/flake.nix).outputs)")" \
    '["nixpkgs","self"]' "flake outputs' arguments"
assert_eq "$(ev "builtins.attrNames (builtins.functionArgs (import $ROOT/contrib/nixos/module.nix))")" \
    '["config","lib","pkgs"]' "the module's arguments"

# the Makefile's libraries and the nixpkgs packages that provide them
args=$(ev "builtins.attrNames (builtins.functionArgs (import $ROOT/package.nix))")
pkgs=$(sed -n 's/^PKGS *:= *//p' "$ROOT/Makefile")
libs=$(sed -n 's/^LDLIBS *+= *//p' "$ROOT/Makefile" | tr ' ' '\n' | sed -n 's/^-l//p' | grep -vx 'pthread\|m')
[ -n "$pkgs" ] && [ -n "$libs" ] || fail "no PKGS or LDLIBS in the Makefile"
for lib in $pkgs $libs; do
    case $lib in
    sqlite3) attr=sqlite ;;
    libpq) attr=postgresql ;;
    libcrypto) attr=openssl ;;
    jansson) attr=jansson ;;
    libmicrohttpd) attr=libmicrohttpd ;;
    libzstd) attr=zstd ;;
    liblzma) attr=xz ;;
    libcurl) attr=curl ;;
    bz2) attr=bzip2 ;;
    *) fail "the Makefile links $lib: name its nixpkgs package here and in package.nix" ;;
    esac
    grep -q "\"$attr\"" <<<"$args" || fail "package.nix does not take $attr (for $lib): $args"
    sed -n '/^ *buildInputs = \[/,/\]/p' "$ROOT/package.nix" | grep -qx " *$attr" ||
        fail "package.nix does not list $attr (for $lib) in buildInputs"
done
echo "ok"
