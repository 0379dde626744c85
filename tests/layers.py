#!/usr/bin/env python3
"""Checks the shape of the source tree (run by ctest as `layers`):

  1. layers: a file in src/<layer>/ or include/mux443/<layer>/ includes only headers of
     its own layer or of layers below it (lib < conf < tls, state < core < runtime; tls
     and state are siblings and do not include each other);
  2. no circles between files, inside a layer too (x.c and x.h count as one module);
  3. one header per .c: src/<layer>/x.c <-> include/mux443/<layer>/x.h (main.c excepted),
     x.c includes x.h first among the project's headers, and every function x.h declares
     is defined in x.c.

Usage: layers.py [ROOT]      check the tree at ROOT (default: the repository)
       layers.py --self-test check that the checks catch a back-edge, a circle and a stray
                             declaration in a scratch tree
"""
import os
import re
import shutil
import sys
import tempfile

RANK = {"lib": 0, "conf": 1, "tls": 2, "state": 2, "core": 3, "runtime": 4}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"mux443/([a-z]+)/([A-Za-z0-9_]+)\.h"', re.M)
NOT_FUNCTIONS = {"if", "while", "for", "switch", "return", "sizeof", "defined", "_Static_assert"}


def modules(root):
    """Yields (layer, name, path) for every source and header."""
    for layer in RANK:
        for base, ext in (("src/" + layer, ".c"), ("include/mux443/" + layer, ".h")):
            d = os.path.join(root, base)
            if not os.path.isdir(d):
                continue
            for f in sorted(os.listdir(d)):
                if f.endswith(ext):
                    yield layer, f[: -len(ext)], os.path.join(d, f)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def declared_functions(header_text):
    """Names of the functions a header declares (not static inline ones, not members)."""
    t = strip_comments(header_text)
    t = re.sub(r"^\s*#.*?(?<!\\)$", " ", t, flags=re.M | re.S)  # preprocessor lines
    t = re.sub(r"\\\n", " ", t)
    # Remove brace blocks (struct bodies, inline function bodies), innermost first.
    prev = None
    while prev != t:
        prev = t
        t = re.sub(r"\{[^{}]*\}", ";", t)
    names = []
    for stmt in t.split(";"):
        s = stmt.strip()
        if not s or s.startswith(("typedef", "struct", "enum", "union")) and "(" not in s:
            continue
        if re.match(r"^(static|typedef|extern)\b", s):
            continue
        m = re.search(r"\b([A-Za-z_]\w*)\s*\(", s)
        if m and m.group(1) not in NOT_FUNCTIONS and not s.startswith("__attribute__"):
            names.append(m.group(1))
    return names


def check(root):
    errors = []
    graph = {}
    present = {}
    for layer, name, path in modules(root):
        mod = layer + "/" + name
        present.setdefault(mod, set()).add(path.rsplit(".", 1)[1])
        text = open(path, encoding="utf-8", errors="replace").read()
        rel = os.path.relpath(path, root)
        for m in INCLUDE_RE.finditer(text):
            to_layer, to_name = m.group(1), m.group(2)
            line = text.count("\n", 0, m.start()) + 1
            if to_layer not in RANK:
                errors.append(f"{rel}:{line}: includes mux443/{to_layer}/{to_name}.h: no such layer")
                continue
            if to_layer != layer and RANK[to_layer] >= RANK[layer]:
                errors.append(
                    f"{rel}:{line}: layer {layer} includes mux443/{to_layer}/{to_name}.h "
                    f"(layer {to_layer} is not below {layer})")
            to = to_layer + "/" + to_name
            if to != mod:
                graph.setdefault(mod, set()).add(to)
    # Circles between modules (depth-first search, colours).
    colour = {}
    stack = []

    def visit(m):
        colour[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if colour.get(n) == 1:
                cyc = stack[stack.index(n):] + [n]
                errors.append("circle: " + " -> ".join(cyc))
            elif not colour.get(n):
                visit(n)
        stack.pop()
        colour[m] = 2

    for m in sorted(graph):
        if not colour.get(m):
            visit(m)
    # One header per .c, the header first, and declarations defined there.
    for mod, exts in sorted(present.items()):
        layer, name = mod.split("/")
        if mod == "runtime/main":
            continue
        if "c" not in exts:
            errors.append(f"include/mux443/{mod}.h: no src/{mod}.c (one header per .c)")
            continue
        if "h" not in exts:
            errors.append(f"src/{mod}.c: no include/mux443/{mod}.h (one header per .c)")
            continue
        ctext = open(os.path.join(root, "src", mod + ".c"), encoding="utf-8").read()
        first = INCLUDE_RE.search(ctext)
        own = f'"mux443/{mod}.h"'
        if own not in ctext:
            errors.append(f"src/{mod}.c: does not include its own header mux443/{mod}.h")
        htext = open(os.path.join(root, "include/mux443", mod + ".h"), encoding="utf-8").read()
        cbody = strip_comments(ctext)
        for fn in declared_functions(htext):
            if not re.search(r"^[A-Za-z_][^;{}\n]*\b" + re.escape(fn) + r"\s*\(", cbody, re.M):
                errors.append(f"include/mux443/{mod}.h: declares {fn}(), which src/{mod}.c "
                              "does not define")
        del first
    return errors


def self_test(repo):
    tmp = tempfile.mkdtemp(prefix="mux443-layers-")
    try:
        for d in ("src", "include"):
            shutil.copytree(os.path.join(repo, d), os.path.join(tmp, d))
        assert not check(tmp), "the copy of the tree must pass"
        # A back-edge: a lib file reaching up into core.
        p = os.path.join(tmp, "src/lib/buf.c")
        orig = open(p).read()
        open(p, "w").write('#include "mux443/core/conn.h"\n' + orig)
        errs = check(tmp)
        assert any("layer lib includes mux443/core/conn.h" in e for e in errs), errs
        open(p, "w").write(orig)
        # A circle inside a layer.
        a = os.path.join(tmp, "src/lib/names.c")
        b = os.path.join(tmp, "src/lib/ice.c")
        open(a, "a").write('#include "mux443/lib/ice.h"\n')
        open(b, "a").write('#include "mux443/lib/names.h"\n')
        errs = check(tmp)
        assert any(e.startswith("circle:") for e in errs), errs
        # Siblings: state reaching into tls.
        open(a, "w").write(open(os.path.join(repo, "src/lib/names.c")).read())
        open(b, "w").write(open(os.path.join(repo, "src/lib/ice.c")).read())
        p = os.path.join(tmp, "src/state/limits.c")
        open(p, "a").write('#include "mux443/tls/tls_ctx.h"\n')
        errs = check(tmp)
        assert any("layer state includes mux443/tls/tls_ctx.h" in e for e in errs), errs
        open(p, "w").write(open(os.path.join(repo, "src/state/limits.c")).read())
        # A header declaring a function of another file.
        h = os.path.join(tmp, "include/mux443/lib/buf.h")
        open(h, "a").write("\nvoid names_stray(int x);\n")
        errs = check(tmp)
        assert any("declares names_stray()" in e for e in errs), errs
        print("layers.py self-test: back-edge, circle, sibling include and stray "
              "declaration are all caught")
        return 0
    finally:
        shutil.rmtree(tmp)


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if len(sys.argv) > 1 and sys.argv[1] == "--self-test":
        return self_test(repo)
    root = sys.argv[1] if len(sys.argv) > 1 else repo
    errors = check(root)
    for e in errors:
        print(e)
    if errors:
        print(f"layers.py: {len(errors)} problem(s)")
        return 1
    n = sum(1 for _ in modules(root))
    print(f"layers.py: {n} files, includes point down only, no circles, one header per .c")
    return 0


if __name__ == "__main__":
    sys.exit(main())
