#!/usr/bin/python3
"""Strict checker for the Prometheus text exposition format 0.0.4 (what mux443's
/metrics serves). Reads FILE (or stdin), prints `promcheck: ok N families M samples`
and exits 0, or prints every problem as `promcheck: line N: what` and exits 1.

Checked: every line is `# HELP name text`, `# TYPE name counter|gauge|histogram|
summary|untyped`, another comment, or a sample `name{label="value",...} value
[timestamp]`; metric and label names are valid; label values use only the escapes
\\\\ \\" \\n; no label name twice in a sample; values are floats (NaN, +Inf, -Inf
allowed); HELP/TYPE at most once per family and TYPE before its samples; a family's
samples are contiguous; no series twice; counters are >= 0 and not NaN; the text ends
with a newline and has no blank-line tricks (empty lines are allowed only as in the
spec: ignored).

usage: ops_promcheck.py [FILE]"""

import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def parse_value(s):
    if s in ("NaN", "+Inf", "-Inf", "Inf", "+inf", "-inf", "nan"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s):
        raise ValueError(f"bad value {s!r}")
    return float(s)


def parse_labels(s, i):
    """s[i] == '{'; returns (list of (name, value), index after '}')."""
    labels = []
    i += 1
    while True:
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            raise ValueError(f"bad label name at column {i + 1}")
        name = m.group(0)
        i = m.end()
        if s[i : i + 2] != '="':
            raise ValueError(f"expected '=\"' after label {name}")
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise ValueError(f"unterminated value of label {name}")
            c = s[i]
            if c == "\\":
                if i + 1 >= len(s) or s[i + 1] not in '\\"n':
                    raise ValueError(f"bad escape in label {name}")
                val.append({"\\": "\\", '"': '"', "n": "\n"}[s[i + 1]])
                i += 2
                continue
            if c == '"':
                i += 1
                break
            val.append(c)
            i += 1
        labels.append((name, "".join(val)))
        if i < len(s) and s[i] == ",":
            i += 1
            continue
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        raise ValueError(f"expected ',' or '}}' after label {name}")


def family_of(name, types):
    if name in types:
        return name
    for suf in SUFFIXES:
        if name.endswith(suf) and name[: -len(suf)] in types:
            return name[: -len(suf)]
    return name


def check(text):
    errs = []
    helps, types, seen_family_samples, done_families = set(), {}, set(), set()
    series = set()
    nsamples = 0
    current = None
    if text and not text.endswith("\n"):
        errs.append("line %d: no newline at the end" % (text.count("\n") + 1))
    for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):

        def bad(msg):
            errs.append(f"line {n}: {msg}: {line!r}")

        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                if len(parts) < 3 or not NAME.fullmatch(parts[2]):
                    bad(f"{parts[1]} without a valid metric name")
                    continue
                name = parts[2]
                if parts[1] == "HELP":
                    if name in helps:
                        bad(f"second HELP for {name}")
                    helps.add(name)
                    if len(parts) < 4 or not parts[3].strip():
                        bad(f"empty HELP text for {name}")
                else:
                    if name in types:
                        bad(f"second TYPE for {name}")
                    if name in seen_family_samples:
                        bad(f"TYPE for {name} after its samples")
                    if len(parts) != 4 or parts[3] not in TYPES:
                        bad("TYPE is not one of " + "|".join(sorted(TYPES)))
                    types[name] = parts[3] if len(parts) == 4 else "?"
            continue
        m = NAME.match(line)
        if not m:
            bad("sample does not start with a metric name")
            continue
        name = m.group(0)
        i = m.end()
        labels = []
        try:
            if i < len(line) and line[i] == "{":
                labels, i = parse_labels(line, i)
            if i >= len(line) or line[i] != " ":
                raise ValueError("expected one space before the value")
            rest = line[i + 1 :].split(" ")
            if len(rest) not in (1, 2) or "" in rest:
                raise ValueError("expected `value [timestamp]`")
            value = parse_value(rest[0])
            if len(rest) == 2 and not re.fullmatch(r"-?\d+", rest[1]):
                raise ValueError("bad timestamp")
        except ValueError as e:
            bad(str(e))
            continue
        nsamples += 1
        names = [k for k, _ in labels]
        if len(set(names)) != len(names):
            bad("a label name appears twice")
        fam = family_of(name, types)
        if fam not in types:
            bad(f"sample of {name} without a TYPE line")
        if fam != current:
            if fam in done_families:
                bad(f"samples of {fam} are not contiguous")
            if current is not None:
                done_families.add(current)
            current = fam
        seen_family_samples.add(fam)
        key = (name, tuple(sorted(labels)))
        if key in series:
            bad("duplicate series")
        series.add(key)
        if types.get(fam) == "counter" and (math.isnan(value) or value < 0):
            bad("counter value is negative or NaN")
    return errs, len(types), nsamples


def main():
    text = open(sys.argv[1], encoding="utf-8").read() if len(sys.argv) > 1 else sys.stdin.read()
    errs, nfam, nsamples = check(text)
    for e in errs:
        print("promcheck: " + e)
    if errs:
        return 1
    if nsamples == 0:
        print("promcheck: no samples at all")
        return 1
    print(f"promcheck: ok {nfam} families {nsamples} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
