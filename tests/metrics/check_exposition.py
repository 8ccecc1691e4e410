#!/usr/bin/env python3
"""Checks a page of Prometheus' text exposition format (0.0.4) and reads
series out of it.

  check_exposition.py PAGE            checks; prints what it found
  check_exposition.py PAGE SERIES...  checks; prints each series' value
                                      ("absent" for one not there)

SERIES is written as Prometheus shows it: name{label="value",...} with the
labels in any order. Exits 1 naming the line when the page is not well
formed: a sample line that does not match the grammar, a sample before its
family's HELP and TYPE, a family named twice, a counter without _total, a
histogram whose buckets are not cumulative or lack +Inf = _count."""
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
# a label value: anything but a quote, backslash or newline, or an escape
VALUE = r'(?:[^"\\\n]|\\\\|\\"|\\n)*'
NUMBER = r"(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN)"
SAMPLE = re.compile(
    rf"^({NAME})(?:\{{((?:{LABEL}=\"{VALUE}\")(?:,{LABEL}=\"{VALUE}\")*)?,?\}})? ({NUMBER})(?: -?[0-9]+)?$"
)
PAIR = re.compile(rf"({LABEL})=\"({VALUE})\"")
HELP = re.compile(rf"^# HELP ({NAME}) ((?:[^\\\n]|\\\\|\\n)*)$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def unescape(text):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def key(name, labels):
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def fail(lineno, line, why):
    sys.exit(f"line {lineno}: {why}: {line!r}")


def parse(text):
    """{series key: value} of a well-formed page."""
    if text and not text.endswith("\n"):
        sys.exit("the page does not end with a newline")
    families = {}  # name -> {"help", "type"}
    series = {}
    histograms = {}  # (family, labels without le) -> {"buckets": [(le, n)], "count", "sum"}
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            m = HELP.match(line)
            if not m:
                fail(lineno, line, "malformed HELP")
            if m.group(1) in families:
                fail(lineno, line, "a second HELP of the family")
            families[m.group(1)] = {"help": m.group(2)}
            continue
        if line.startswith("# TYPE "):
            m = TYPE.match(line)
            if not m or m.group(1) not in families or "type" in families[m.group(1)]:
                fail(lineno, line, "TYPE without its HELP just before, or twice")
            families[m.group(1)]["type"] = m.group(2)
            if m.group(2) == "counter" and not m.group(1).endswith("_total"):
                fail(lineno, line, "a counter's name ends in _total")
            continue
        if line.startswith("#") or not line:
            fail(lineno, line, "neither HELP, TYPE nor a sample")
        m = SAMPLE.match(line)
        if not m:
            fail(lineno, line, "not a sample line")
        name, labels_text, value_text = m.groups()
        labels = {k: unescape(v) for k, v in PAIR.findall(labels_text or "")}
        if len(labels) != len(PAIR.findall(labels_text or "")):
            fail(lineno, line, "a label named twice")
        value = float(value_text.replace("Inf", "inf").replace("NaN", "nan"))
        family = name
        if name not in families:
            for suffix in ("_bucket", "_sum", "_count"):
                base = name[: -len(suffix)]
                if name.endswith(suffix) and families.get(base, {}).get("type") == "histogram":
                    family = base
        if family not in families or "type" not in families[family]:
            fail(lineno, line, "a sample without its family's HELP and TYPE before it")
        if list(families).pop() != family:
            fail(lineno, line, "a sample away from its family's other samples")
        k = key(name, labels)
        if k in series:
            fail(lineno, line, "the same series twice")
        series[k] = value
        if families[family]["type"] == "histogram":
            if name == family:
                fail(lineno, line, "a histogram's sample without _bucket, _sum or _count")
            rest = {a: b for a, b in labels.items() if a != "le"}
            h = histograms.setdefault((family, key("", rest)), {"buckets": []})
            if name.endswith("_bucket"):
                if "le" not in labels:
                    fail(lineno, line, "a bucket without le")
                h["buckets"].append((float(labels["le"].replace("Inf", "inf")), value))
            else:
                h[name[len(family) + 1 :]] = value
    for (family, labels), h in histograms.items():
        where = f"histogram {family}{labels}"
        les = [le for le, _ in h["buckets"]]
        counts = [n for _, n in h["buckets"]]
        if les != sorted(les) or len(set(les)) != len(les):
            sys.exit(f"{where}: buckets out of order")
        if counts != sorted(counts):
            sys.exit(f"{where}: buckets not cumulative")
        if not les or not math.isinf(les[-1]):
            sys.exit(f"{where}: no +Inf bucket")
        if "count" not in h or "sum" not in h or h["count"] != counts[-1]:
            sys.exit(f"{where}: _count missing or not the +Inf bucket")
    return families, series


def normalize(series):
    m = re.match(rf"^({NAME})(?:\{{(.*)\}})?$", series)
    if not m:
        sys.exit(f"cannot read the series {series!r}")
    return key(m.group(1), {k: unescape(v) for k, v in PAIR.findall(m.group(2) or "")})


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        families, series = parse(f.read())
    if len(sys.argv) == 2:
        print(f"well formed: {len(families)} families, {len(series)} series")
        return
    for wanted in sys.argv[2:]:
        value = series.get(normalize(wanted))
        print("absent" if value is None else f"{value:g}")


if __name__ == "__main__":
    main()
