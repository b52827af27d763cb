#!/usr/bin/env bash
# The test parser of the Prometheus text format (tests/http/promparse.py) is strict:
# it reads well-formed exposition text (labels with escapes, summaries, histograms,
# special values, timestamps) and refuses each kind of malformed input.  The /metrics
# tests rely on it.
source "$(dirname "$0")/../harness/env.sh"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || skip "python3 missing"
P="$PY $ROOT/tests/http/promparse.py"

good=$(cat <<'X'
# HELP x_requests_total Requests \\ served.\nSecond line.
# TYPE x_requests_total counter
x_requests_total{code="200",path="/a\"b\\c\nd"} 1027 1395066363000
x_requests_total{code="400",} 3
# a comment
# TYPE x_temp gauge
x_temp -1.5e-3
# TYPE x_lat summary
x_lat{quantile="0.5"} 4.2
x_lat_sum 17
x_lat_count 4
# TYPE x_h histogram
x_h_bucket{le="1"} 0
x_h_bucket{le="+Inf"} 2
x_h_sum NaN
x_h_count 2
x_untyped +Inf
X
)
out=$(printf '%s\n' "$good" | $P -) || fail "well-formed input refused"
printf '%s' "$out" | grep -q '"x_requests_total{code=\\"200\\",path=\\"/a\\\\\\"b\\\\\\\\c\\\\nd\\"}": 1027' ||
    fail "label escapes not decoded: $out"
printf '%s' "$out" | grep -q '"x_temp": -0.0015' || fail "gauge value: $out"

# with --conventions: untyped families are refused
printf '%s\n' "$good" | $P --conventions - >/dev/null 2>&1 && fail "untyped accepted under --conventions"

refuse() {
    local why=$1 text=$2 flags=${3:-}
    if printf '%s' "$text" | $P $flags - >/dev/null 2>"$T/err"; then
        fail "accepted ($why): $text"
    fi
    grep -q 'promparse: ' "$T/err" || fail "no message ($why)"
}
refuse "no final newline" 'a 1'
refuse "blank line" $'a 1\n\nb 2\n'
refuse "bad name" $'1a 1\n'
refuse "bad name char" $'a-b 1\n'
refuse "bad value" $'a one\n'
refuse "bad value 2" $'a 1.2.3\n'
refuse "two spaces" $'a  1\n'
refuse "trailing junk" $'a 1 2 3\n'
refuse "bad timestamp" $'a 1 1.5\n'
refuse "unterminated labels" $'a{x="1" 1\n'
refuse "unquoted label" $'a{x=1} 1\n'
refuse "bad escape" $'a{x="\\t"} 1\n'
refuse "reserved label" $'a{__x="1"} 1\n'
refuse "duplicate label" $'a{x="1",x="2"} 1\n'
refuse "duplicate series" $'a{x="1"} 1\na{x="1"} 2\n'
refuse "second TYPE" $'# TYPE a gauge\n# TYPE a gauge\na 1\n'
refuse "second HELP" $'# HELP a x\n# HELP a y\na 1\n'
refuse "unknown type" $'# TYPE a meter\na 1\n'
refuse "TYPE after samples" $'a 1\n# TYPE a gauge\n'
refuse "interleaved family" $'a 1\nb 1\na{x="1"} 2\n'
refuse "summary without quantile" $'# TYPE s summary\ns 1\n'
refuse "histogram bucket without le" $'# TYPE h histogram\nh_bucket 1\n'
refuse "counter without _total" $'# HELP c x\n# TYPE c counter\nc 1\n' --conventions
refuse "gauge with _total" $'# HELP g_total x\n# TYPE g_total gauge\ng_total 1\n' --conventions
refuse "no HELP" $'# TYPE g gauge\ng 1\n' --conventions
refuse "prefix" $'# HELP g x\n# TYPE g gauge\ng 1\n' "--conventions --prefix sluice_"
# names of another program kept for compatibility: exempt from the prefix and _total rules
printf '# HELP h_c x\n# TYPE h_c counter\nh_c 1\n' | $P --conventions --prefix sluice_ --compat h_ - >/dev/null ||
    fail "a --compat counter without _total refused"
refuse "compat without HELP" $'# TYPE h_c counter\nh_c 1\n' "--conventions --prefix sluice_ --compat h_"
echo "ok"
