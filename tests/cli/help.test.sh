#!/usr/bin/env bash
# Every option a command reads is in its --help: for each src/cli/cmd_*.c, each option
# literal the file compares an argument with (strcmp, util_starts_with, has_flag) is
# listed by `sluice COMMAND --help` of a command that file implements (the table of
# src/cli/commands.c names each command's function).  Each help line of an option is
# one line.  Group commands (`drv`, `store`, `db`, `nar`, ...) list their subcommands.
source "$(dirname "$0")/../harness/env.sh"
PY=$(command -v python3) || skip "python3 missing"
"$PY" - "$ROOT" "$SLUICE" <<'PYEOF' || fail "options missing from --help (above)"
import glob, os, re, subprocess, sys
root, sluice = sys.argv[1], sys.argv[2]
table = open(os.path.join(root, "src/cli/commands.c")).read()
cmds = re.findall(r'\{"([a-z][a-z -]*)", (cli_cmd_\w+),', table)
if len(cmds) < 20:
    sys.exit("only %d commands found in src/cli/commands.c" % len(cmds))
where = {}
for f in glob.glob(os.path.join(root, "src/cli/cmd_*.c")):
    for fn in re.findall(r"^int (cli_cmd_\w+)\(", open(f).read(), re.M):
        where[fn] = f
helps, bad = {}, 0
for name, fn in cmds:
    if fn not in where:
        sys.exit("%s: no src/cli/cmd_*.c defines %s" % (name, fn))
    p = subprocess.run([sluice] + name.split() + ["--help"], capture_output=True, text=True)
    if p.returncode != 0 or not p.stdout.startswith("usage: sluice " + name):
        print("sluice %s --help: exit %d: %s" % (name, p.returncode, (p.stdout + p.stderr)[:200]))
        bad += 1
    for line in p.stdout.splitlines():
        if line.startswith("  -") and not re.match(r"  \S.*\S {2,}\S", line):
            print("sluice %s --help: option line without its one-line description: %r" % (name, line))
            bad += 1
    helps[where[fn]] = helps.get(where[fn], "") + p.stdout
lit = re.compile(r'(?:strcmp\(\w+(?:\[\w+\])?|util_starts_with\(\w+(?:\[\w+\])?|has_flag\(\w+, \w+)'
                 r', "(-[-a-zA-Z0-9]+)"')
for f, text in sorted(helps.items()):
    for opt in sorted(set(lit.findall(open(f).read())) - {"--", "-h", "--help"}):
        if not re.search(r"(^|[\s,\[|(])" + re.escape(opt) + r"($|[\s,=\]|)])", text, re.M):
            print("%s reads %s, which no --help of its commands lists" % (os.path.relpath(f, root), opt))
            bad += 1
groups = sorted({n.split()[0] for n, _ in cmds if " " in n})
for g in groups:
    p = subprocess.run([sluice, g, "--help"], capture_output=True, text=True)
    subs = [n for n, _ in cmds if n.startswith(g + " ")]
    missing = [s for s in subs if s.split()[1] not in p.stdout]
    if "subcommands:" not in p.stdout or missing:
        print("sluice %s --help does not list %r" % (g, missing or "subcommands"))
        bad += 1
print("%d commands, %d groups checked" % (len(cmds), len(groups)))
sys.exit(1 if bad else 0)
PYEOF
echo "ok"
