#!/usr/bin/env python3
"""Line coverage per crate, and the gate of scripts/test.sh (the rules: coverage.json).

  rust LCOV [--files OUT] [--only CRATE,…]
                            per-crate line coverage of the workspace from the LCOV file
                            that `cargo llvm-cov report --lcov` wrote, without the
                            exclusions of coverage.json; exits 1 when a gated crate is
                            below the minimum (--files: also write a per-file table;
                            --only: these crates only, after a run of a part)
  web SUMMARY               the web client's line coverage from vitest's
                            coverage-summary.json (vitest enforces its own gate)
"""

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = json.loads((ROOT / "coverage.json").read_text())
MINIMUM = CONFIG["min_line_percent"]
GLOBS = [glob for rule in CONFIG["exclude"] for glob in rule.get("paths", [])]
SKIP_CFG_TEST = any(rule.get("cfg_test_items") for rule in CONFIG["exclude"])

ATTRIBUTE = re.compile(r"^\s*#\[")


def excluded(relative):
    return any(fnmatch.fnmatch(relative, glob) for glob in GLOBS)


def cfg_test_lines(source):
    """Line numbers (1-based) of the items under `#[cfg(test)]` in rustfmt-formatted code:
    from the attribute to the `}` at the item's own indentation (or its `;`)."""
    lines = source.splitlines()
    skipped = set()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "#[cfg(test)]":
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and ATTRIBUTE.match(lines[i]):
            i += 1
        if i >= len(lines):
            break
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        end = i
        if not lines[i].rstrip().endswith(";"):
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j].rstrip() == indent + "}"),
                len(lines) - 1,
            )
        skipped.update(range(start + 1, end + 2))
        i = end + 1
    return skipped


def read_lcov(path):
    """{absolute source path: {line: hit count}} from an LCOV file."""
    files = {}
    current = None
    for line in Path(path).read_text().splitlines():
        if line.startswith("SF:"):
            current = files.setdefault(line[3:], {})
        elif line.startswith("DA:") and current is not None:
            number, count = line[3:].split(",")[:2]
            number = int(number)
            current[number] = max(current.get(number, 0), int(count))
        elif line == "end_of_record":
            current = None
    return files


def workspace_crates():
    """[(crate name, directory relative to the root)], longest directory first."""
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    crates = [
        (p["name"], Path(p["manifest_path"]).parent.relative_to(ROOT).as_posix())
        for p in metadata["packages"]
    ]
    return sorted(crates, key=lambda c: -len(c[1]))


def percent(covered, total):
    return 100.0 * covered / total if total else 100.0


def gate_label(name, value):
    if name in CONFIG["gated"]:
        return f">= {MINIMUM} ok" if value >= MINIMUM else f"BELOW {MINIMUM}"
    if name in CONFIG.get("gated_not_yet", {}):
        return "not gated yet"
    return "-"


def rust(lcov, files_out=None, only=None):
    crates = [c for c in workspace_crates() if not only or c[0] in only]
    totals = {name: [0, 0] for name, _ in crates}
    rows = []
    for source, hits in sorted(read_lcov(lcov).items()):
        try:
            relative = Path(source).resolve().relative_to(ROOT).as_posix()
        except ValueError:
            continue  # the standard library, dependencies
        crate = next((n for n, d in crates if relative.startswith(d + "/")), None)
        if crate is None or excluded(relative):
            continue
        skip = cfg_test_lines((ROOT / relative).read_text()) if SKIP_CFG_TEST else set()
        counted = {n: c for n, c in hits.items() if n not in skip}
        covered = sum(1 for c in counted.values() if c > 0)
        totals[crate][0] += covered
        totals[crate][1] += len(counted)
        missed = sorted(n for n, c in counted.items() if c == 0)
        rows.append((relative, covered, len(counted), missed))

    if files_out:
        with open(files_out, "w") as out:
            for relative, covered, total, missed in rows:
                out.write(f"{percent(covered, total):6.1f}  {covered:5}/{total:<5}  {relative}  missed: {compact(missed)}\n")

    print(f"{'crate':<22}{'lines':>8}{'covered':>9}{'%':>8}  gate")
    failed = []
    for name, _ in sorted(crates):
        covered, total = totals[name]
        if total == 0:
            continue
        value = percent(covered, total)
        label = gate_label(name, value)
        if label.startswith("BELOW"):
            failed.append(f"{name} {value:.1f} %")
        print(f"{name:<22}{total:>8}{covered:>9}{value:>8.1f}  {label}")
    for name in CONFIG["gated"]:
        if name != "web" and name not in totals and not only:
            failed.append(f"{name} (not in the workspace)")
    if failed:
        print(f"coverage: below {MINIMUM} % of lines: {', '.join(failed)}")
        return 1
    return 0


def compact(numbers):
    """[3, 4, 5, 9] -> "3-5,9"."""
    spans = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)


def web(summary):
    path = Path(summary)
    if not path.is_file():
        print(f"{'web (vitest)':<22}  no coverage summary (the web tests did not run)")
        return 1
    lines = json.loads(path.read_text())["total"]["lines"]
    value = float(lines["pct"])
    label = gate_label("web", value)
    print(f"{'web (vitest)':<22}{lines['total']:>8}{lines['covered']:>9}{value:>8.1f}  {label}")
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "rust":
        files_out = argv[argv.index("--files") + 1] if "--files" in argv else None
        only = argv[argv.index("--only") + 1].split(",") if "--only" in argv else None
        return rust(argv[1], files_out, only)
    if len(argv) == 2 and argv[0] == "web":
        return web(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
