#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a circle.

    python3 scripts/check_imports.py [CRATE_SRC_DIR ...]

Each source file is one module (`src/a.rs` and `src/a/mod.rs` are `a`, `src/a/b.rs` is
`a::b`). A module depends on another when its non-test code names it through `crate::`,
`super::` or `self::` paths, in `use` declarations or inline. A path is resolved to the
longest module it names (`crate::hub::Room` is a dependency on `hub`). A parent that
declares a child (`mod b;`) does not depend on it by declaring it; a child that uses an
item of its parent's file does (so `session::polling` using `super::random_id` while
`session` uses `polling` is a circle). Paths to the crate root (`crate::Settings`) are
not counted: `lib.rs` is the crate's facade of re-exports, not a layer.

Prints every circle found (one per strongly connected component, as a path) and exits 1,
or prints the number of modules and edges checked and exits 0. `#[cfg(test)]` items are
left out: unit tests may use whatever they test.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DEFAULT_CRATES = [
    "services/gateway/src",
    "services/ticket-api/src",
    "shared/protocol/src",
    "shared/auth/src",
    "shared/config/src",
    "shared/telemetry/src",
    "shared/test-support/src",
    "loadtest/src",
]


def module_of(src: Path, file: Path) -> tuple[str, ...] | None:
    rel = file.relative_to(src).with_suffix("")
    parts = rel.parts
    if parts in (("lib",), ("main",)):
        return ()
    if parts[0] == "bin":
        return None
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def strip_comments_and_strings(text: str) -> str:
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""')
            i += 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or (c == "'" and re.match(r"'\\u\{[0-9a-fA-F]+\}'", text[i:i + 12])):
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_cfg_test(text: str) -> str:
    """Removes every item that follows `#[cfg(test)]` (a `mod … { … }`, a `use …;`, an fn)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", text)
        if not m:
            return text
        i = m.end()
        # The item ends at the first `;` before any `{`, or at the `}` matching the first `{`.
        brace = text.find("{", i)
        semi = text.find(";", i)
        if semi >= 0 and (brace < 0 or semi < brace):
            text = text[: m.start()] + text[semi + 1:]
            continue
        depth, j = 0, brace
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        text = text[: m.start()] + text[j + 1:]


def expand_use(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` → [`a::b`, `a::c::d`, `a::c::e`] (aliases dropped)."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    paths: list[str] = []

    def walk(prefix: str, s: str) -> None:
        depth, start, items = 0, 0, []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(s[start:k])
                start = k + 1
        items.append(s[start:])
        for item in items:
            if not item:
                continue
            b = item.find("{")
            if b >= 0 and item.endswith("}"):
                walk(prefix + item[:b], item[b + 1:-1])
            else:
                paths.append(prefix + item)

    walk("", tree)
    return paths


def resolve(path: list[str], here: tuple[str, ...], modules: set[tuple[str, ...]], is_dir_module: bool) -> tuple[str, ...] | None:
    if not path:
        return None
    head, rest = path[0], path[1:]
    if head == "crate":
        base: tuple[str, ...] = ()
    elif head in ("super", "self"):
        # `self` in a file module is the module itself; `super` its parent.
        base = here
        while path and path[0] in ("super", "self"):
            if path[0] == "super":
                base = base[:-1]
            path = path[1:]
        rest = path
    elif here + (head,) in modules:
        # A 2018-edition relative path through a child module (`projects::configure`).
        base = here + (head,)
        rest = path[1:]
    else:
        return None
    best = base
    cur = base
    for seg in rest:
        cur = cur + (seg,)
        if cur in modules:
            best = cur
        else:
            break
    return best


def edges_of(src: Path) -> tuple[set[tuple[str, ...]], dict[tuple[str, ...], set[tuple[str, ...]]]]:
    files = {}
    for file in sorted(src.rglob("*.rs")):
        module = module_of(src, file)
        if module is not None:
            files[module] = file
    modules = set(files)
    graph: dict[tuple[str, ...], set[tuple[str, ...]]] = {m: set() for m in modules}
    for module, file in files.items():
        text = strip_cfg_test(strip_comments_and_strings(file.read_text()))
        dir_module = file.name == "mod.rs"
        paths: list[list[str]] = []
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            for p in expand_use(m.group(1)):
                paths.append([s for s in p.split("::") if s])
        for m in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", text):
            paths.append(m.group(1).split("::"))
        for m in re.finditer(r"(?<![\w:])(\w+)((?:::\w+)+)", text):
            if module + (m.group(1),) in modules:
                paths.append((m.group(1) + m.group(2)).split("::"))
        for p in paths:
            if p and p[-1] == "*":
                p = p[:-1]
            target = resolve(p, module, modules, dir_module)
            # `()` is the crate root: lib.rs is the crate's facade (its re-exports), not a layer.
            if target is None or target == module or target == ():
                continue
            # A parent naming its own child is a declaration or a downward import.
            graph[module].add(target)
    return modules, graph


def cycles(graph: dict[tuple[str, ...], set[tuple[str, ...]]]) -> list[list[tuple[str, ...]]]:
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def circle_path(comp: list[tuple[str, ...]], graph) -> list[tuple[str, ...]]:
    """One concrete circle through the component, for the message."""
    members = set(comp)
    start = min(comp)
    # BFS back to start.
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def name(module: tuple[str, ...]) -> str:
    return "crate" if not module else "::".join(module)


def self_test() -> None:
    """The checker finds a circle it is shown, and passes the same crate without it."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        (src / "lib.rs").write_text("pub mod a;\npub mod b;\npub mod c;\n")
        (src / "a.rs").write_text("use crate::b::B;\npub struct A;\n")
        (src / "b").mkdir()
        (src / "b" / "mod.rs").write_text("mod inner;\npub struct B(inner::I);\n")
        (src / "b" / "inner.rs").write_text("pub struct I(super::super::c::C);\n")
        (src / "c.rs").write_text(
            "// crate::a::A in a comment is not an import\n"
            "pub struct C;\n#[cfg(test)]\nmod tests { use crate::a::A; }\n"
        )
        _, graph = edges_of(src)
        assert not cycles(graph), "no circle yet"
        (src / "c.rs").write_text("pub struct C(Box<crate::a::A>);\n")
        _, graph = edges_of(src)
        found = cycles(graph)
        assert len(found) == 1 and sorted(map(name, found[0])) == ["a", "b", "b::inner", "c"], found


def main(argv: list[str]) -> int:
    self_test()
    root = Path(__file__).resolve().parent.parent
    crates = argv or DEFAULT_CRATES
    failed = False
    for crate in crates:
        src = (root / crate) if not Path(crate).is_absolute() else Path(crate)
        modules, graph = edges_of(src)
        found = cycles(graph)
        edges = sum(len(v) for v in graph.values())
        if found:
            failed = True
            for comp in found:
                path = circle_path(comp, graph)
                print(f"{crate}: import cycle among {len(comp)} modules: " + " -> ".join(map(name, path)))
        else:
            print(f"{crate}: {len(modules)} modules, {edges} imports, no cycle")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
