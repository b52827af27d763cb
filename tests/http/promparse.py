#!/usr/bin/env python3
"""promparse.py: a strict parser of the Prometheus text exposition format 0.0.4, for the
tests of /metrics.

    promparse.py [--prefix P] [--compat C] [--conventions] FILE|-

Prints the samples as JSON, {"name{label=\"v\",...}": value, ...} with labels sorted,
or exits 1 naming the line that breaks the format.  What it checks (format):
  - every line ends in "\\n" and the input ends with one; no blank lines (strict);
  - "# HELP name text" (text escapes only \\\\ and \\n) and "# TYPE name type" (counter,
    gauge, histogram, summary, untyped), each at most once per name, TYPE before the
    family's first sample; other "#" lines are comments;
  - sample lines: name [{label="value",...}] value [timestamp]; metric names
    [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* not starting "__",
    label values with the escapes \\\\, \\" and \\n only, no label twice;
  - values as Go's ParseFloat reads them (also NaN, +Inf, -Inf), timestamps int64;
  - a family's samples are contiguous; summary samples are NAME, NAME_sum, NAME_count
    (NAME with a "quantile" label), histogram ones NAME_bucket (with "le"), NAME_sum,
    NAME_count; no series twice.
With --conventions (Prometheus naming conventions as sluice follows them): every family
has HELP and TYPE, none is untyped, counters end in "_total", gauges do not, and with
--prefix every name starts with P.  Names starting with C (--compat: another program's
names kept for compatibility, such as Hydra's "hydraqueuerunner_") are exempt from the
prefix and the "_total" rules; the standard process metrics ("process_", as every
Prometheus client library names them) from the prefix rule.
"""
import json
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|Inf|inf)\Z")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class FormatError(Exception):
    pass


def parse_value(s, what):
    if s in ("NaN", "Nan", "nan"):
        return float("nan")
    if not FLOAT.match(s):
        raise FormatError("bad %s %r" % (what, s))
    return float(s)


def parse_labels(s, i):
    """s[i] == '{'; returns (labels dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if i >= len(s):
            raise FormatError("unterminated label set")
        if s[i] == "}":
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            raise FormatError("bad label name at column %d" % (i + 1))
        name = m.group(0)
        if name.startswith("__"):
            raise FormatError("reserved label name %r" % name)
        if name in labels:
            raise FormatError("label %r twice" % name)
        i = m.end()
        if s[i:i + 2] != '="':
            raise FormatError("expected =\" after label %r" % name)
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise FormatError("unterminated label value")
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt == "\\":
                    val.append("\\")
                elif nxt == '"':
                    val.append('"')
                elif nxt == "n":
                    val.append("\n")
                else:
                    raise FormatError("bad escape \\%s in label value" % nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise FormatError("newline in label value")
            else:
                val.append(c)
                i += 1
        labels[name] = "".join(val)
        if i < len(s) and s[i] == ",":
            i += 1
        elif i < len(s) and s[i] != "}":
            raise FormatError("expected , or } at column %d" % (i + 1))


def family_of(name, types):
    """The family a sample name belongs to, given the TYPE lines seen so far."""
    for suffix in ("_sum", "_count", "_bucket"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            t = types.get(base)
            if t in ("summary", "histogram") and (suffix != "_bucket" or t == "histogram"):
                return base, suffix
    return name, ""


def key_of(name, labels):
    inner = ",".join('%s="%s"' % (k, labels[k].replace("\\", "\\\\").replace('"', '\\"')
                                   .replace("\n", "\\n")) for k in sorted(labels))
    return name + ("{" + inner + "}" if labels else "")


def parse(text, prefix=None, conventions=False, compat=None):
    if text and not text.endswith("\n"):
        raise FormatError("input does not end with a newline")
    types, helps = {}, {}
    samples = {}
    done_families = set()
    current = None
    for lineno, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        try:
            if line == "":
                raise FormatError("blank line")
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"):
                    name = parts[2]
                    if not NAME.fullmatch(name):
                        raise FormatError("bad metric name %r" % name)
                    if parts[1] == "HELP":
                        if name in helps:
                            raise FormatError("second HELP for %s" % name)
                        doc = parts[3] if len(parts) > 3 else ""
                        if "\\" in re.sub(r"\\[\\n]", "", doc):
                            raise FormatError("bad escape in HELP of %s" % name)
                        helps[name] = doc
                    else:
                        if name in types:
                            raise FormatError("second TYPE for %s" % name)
                        if len(parts) != 4 or parts[3] not in TYPES:
                            raise FormatError("bad TYPE line")
                        if name in done_families or name == current or any(
                                family_of(k.split("{")[0], {})[0] == name for k in samples):
                            raise FormatError("TYPE for %s after its samples" % name)
                        types[name] = parts[3]
                continue
            m = NAME.match(line)
            if not m:
                raise FormatError("bad metric name")
            name = m.group(0)
            i = m.end()
            labels = {}
            if i < len(line) and line[i] == "{":
                labels, i = parse_labels(line, i)
            if i >= len(line) or line[i] != " ":
                raise FormatError("expected a space before the value")
            rest = line[i + 1:].split(" ")
            if len(rest) not in (1, 2) or rest[0] == "":
                raise FormatError("expected 'value [timestamp]'")
            value = parse_value(rest[0], "value")
            if len(rest) == 2 and not re.fullmatch(r"-?[0-9]+", rest[1]):
                raise FormatError("bad timestamp %r" % rest[1])
            fam, suffix = family_of(name, types)
            t = types.get(fam, "untyped")
            if t == "summary" and suffix == "" and "quantile" not in labels:
                raise FormatError("summary sample %s without quantile" % name)
            if t == "histogram" and suffix == "":
                raise FormatError("histogram sample %s without _bucket/_sum/_count" % name)
            if t == "histogram" and suffix == "_bucket" and "le" not in labels:
                raise FormatError("bucket without le")
            if fam != current:
                if fam in done_families:
                    raise FormatError("samples of %s are not together" % fam)
                if current is not None:
                    done_families.add(current)
                current = fam
            k = key_of(name, labels)
            if k in samples:
                raise FormatError("series %s twice" % k)
            samples[k] = value
            exempt = compat is not None and name.startswith(compat)
            if conventions:
                if (prefix and not exempt and not name.startswith(prefix)
                        and not name.startswith("process_")):
                    raise FormatError("%s does not start with %s" % (name, prefix))
                if fam not in types or fam not in helps:
                    raise FormatError("%s has no TYPE or HELP" % fam)
                if t == "untyped":
                    raise FormatError("%s is untyped" % fam)
                if t == "counter" and not exempt and not fam.endswith("_total"):
                    raise FormatError("counter %s does not end in _total" % fam)
                if t != "counter" and not exempt and fam.endswith("_total"):
                    raise FormatError("%s %s ends in _total" % (t, fam))
        except FormatError as e:
            raise FormatError("line %d: %s: %r" % (lineno, e, line))
    if conventions:
        for name in types:
            if name not in helps:
                raise FormatError("%s has a TYPE but no HELP" % name)
    return samples


def main(argv):
    prefix, conventions, path, compat = None, False, None, None
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a == "--prefix":
            prefix = args.pop(0)
        elif a == "--compat":
            compat = args.pop(0)
        elif a == "--conventions":
            conventions = True
        else:
            path = a
    if path is None:
        print(__doc__, file=sys.stderr)
        return 2
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    try:
        samples = parse(text, prefix, conventions, compat)
    except FormatError as e:
        print("promparse: %s" % e, file=sys.stderr)
        return 1
    json.dump(samples, sys.stdout, indent=0, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
