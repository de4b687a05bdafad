#!/usr/bin/env python3
"""Import circles in src/ that span more than one folder.

Builds the file-level dependency graph of the crate: one node per module file, found by
following `mod name;` declarations from src/lib.rs, and one edge for every `crate::`,
`super::`, `self::` or child-module path a file names (in `use` lines or inline). A path is
resolved to the deepest module file it names; a name a module only re-exports (`pub use`)
is followed to the file that defines it, so `use crate::config::Problems` points at the
file that holds `Problems`, not at config/mod.rs. A `mod` declaration alone is not an
edge: declaring a child is not depending on it.

A strongly connected component whose files lie in more than one folder is a circle
between parts of the code that should depend one way. Each is printed; the script exits 1
if any is not in ALLOWED below (each with the reason it is allowed).

Usage: .ci/module-cycles.py [--all]   (--all also prints circles inside one folder)
python3 standard library only.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# Circles allowed to span folders: frozenset of files (relative to src/) -> reason.
ALLOWED = {}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(text):
    """Blank out comments, string and char literals so paths inside them are not read."""
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
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not re.match(r"\w", text[i - 1])):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"' and (i == 0 or text[i - 1] != "'"):
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            i += len(re.match(r"'(\\.[^']*|[^\\'])'", text[i:]).group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


INLINE_MOD = re.compile(r"\bmod\s+" + IDENT + r"\s*\{")


def drop_inline_modules(code):
    """Blank out inline `mod name { ... }` blocks (in practice `#[cfg(test)] mod tests`).

    Inside one, `super::` names the file itself, not its parent, so reading its paths as the
    file's own would invent an edge to the parent module; and a file's unit tests are not a
    dependency of the code they test.
    """
    out, i = [], 0
    for m in INLINE_MOD.finditer(code):
        if m.start() < i:
            continue
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        out.append(code[i:m.start()])
        i = j
    out.append(code[i:])
    return "".join(out)


class Module:
    def __init__(self, path, file):
        self.path = path  # tuple of names from the crate root
        self.file = file  # relative to src/
        self.children = {}  # name -> Module
        self.code = ""
        self.reexports = {}  # name -> full path tuple (from `pub use`)


def child_file(parent_file, name, attr_path):
    base = os.path.dirname(parent_file)
    if attr_path:
        return os.path.normpath(os.path.join(base, attr_path))
    stem = os.path.basename(parent_file)
    if stem not in ("lib.rs", "main.rs", "mod.rs"):
        base = os.path.join(base, stem[:-3])
    for candidate in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
        if os.path.exists(os.path.join(ROOT, candidate)):
            return candidate
    return None


MOD_DECL = re.compile(r'(?:#\[path\s*=\s*"([^"]+)"\]\s*)?(?:pub(?:\([^)]*\))?\s+)?mod\s+(' + IDENT + r")\s*;")


def load_tree():
    modules = {}

    def visit(path, file):
        mod = Module(path, file)
        modules[path] = mod
        raw = open(os.path.join(ROOT, file), encoding="utf-8").read()
        # #[path] is read before literals are blanked.
        decls = [(m.group(2), m.group(1)) for m in MOD_DECL.finditer(re.sub(r"//.*", "", raw))]
        mod.code = drop_inline_modules(strip_comments_and_strings(raw))
        for name, attr in decls:
            f = child_file(file, name, attr)
            if f:
                mod.children[name] = visit(path + (name,), f)
        return mod

    visit((), "lib.rs")
    return modules


def use_trees(code):
    """Yield each path a `use` item names, as a list of segments (globs end in '*')."""
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        # `x as y` renames the last segment; drop the rename before spaces go.
        tree = re.sub(r"\s+as\s+" + IDENT, "", m.group(1))
        yield from expand(re.sub(r"\s+", "", tree), [])


def expand(tree, prefix):
    """Paths of one use tree, whitespace removed: `a::b::{c,d::{e,f}}`, `a::b`, `a::*`."""
    if tree.startswith("::"):
        tree = tree[2:]
    brace = tree.find("{")
    if brace < 0:
        segs = [s for s in tree.split("::") if s]
        yield prefix + segs
        return
    head = [s for s in tree[:brace].split("::") if s]
    inner = tree[brace + 1:tree.rfind("}")]
    depth, start = 0, 0
    parts = []
    for i, c in enumerate(inner):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    for p in parts:
        if not p:
            continue
        if p == "self":
            yield prefix + head
        else:
            yield from expand(p, prefix + head)


def absolute(mod, segs):
    """Turn a path written in `mod` into a path from the crate root, or None if external."""
    segs = list(segs)
    if not segs:
        return None
    if segs[0] == "crate":
        return segs[1:]
    if segs[0] in ("self", "super"):
        base = list(mod.path)
        # a non-mod.rs file's `super` is its parent module, same as for mod.rs
        while segs and segs[0] in ("self", "super"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
        return base + segs
    if segs[0] in mod.children:
        return list(mod.path) + segs
    return None


def resolve(modules, full, seen=None):
    """The file that defines what `full` names: deepest module, then through re-exports."""
    seen = seen or set()
    key = tuple(full)
    if key in seen:
        return None
    seen.add(key)
    node = modules[()]
    i = 0
    while i < len(full) and full[i] in node.children:
        node = node.children[full[i]]
        i += 1
    if i < len(full) and full[i] in node.reexports:
        target = node.reexports[full[i]] + full[i + 1:]
        found = resolve(modules, target, seen)
        if found:
            return found
    return node.file


def build_graph(modules):
    for mod in modules.values():
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", mod.code):
            tree = re.sub(r"\s+as\s+" + IDENT, "", m.group(1))
            for segs in expand(re.sub(r"\s+", "", tree), []):
                full = absolute(mod, segs)
                if full and segs[-1] != "*":
                    mod.reexports[segs[-1]] = full
    graph = {m.file: set() for m in modules.values()}
    for mod in modules.values():
        paths = list(use_trees(mod.code))
        # `use crate::config;` then `config::Limits`: the imported module name is a path start
        aliases = {}
        for segs in paths:
            full = absolute(mod, segs)
            if full and tuple(full) in modules and segs[-1] not in ("self", "super", "crate"):
                aliases[segs[-1]] = full
        inline = re.finditer(r"(?<![\w:])((?:crate|super|self|" + IDENT + r")(?:::" + IDENT + r")+)", mod.code)
        paths += [p.group(1).split("::") for p in inline]
        for segs in paths:
            if segs and segs[-1] == "*":
                segs = segs[:-1]
            full = absolute(mod, segs)
            if full is None and segs[0] in aliases:
                full = aliases[segs[0]] + segs[1:]
            if full is None:
                continue
            target = resolve(modules, full)
            if target and target != mod.file:
                graph[mod.file].add(target)
    return graph


def strongly_connected(graph):
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def folder(file):
    """The part of the crate a file belongs to: its top folder under src/ (a module and
    its child modules in `name/` are one part), or the file itself at the top."""
    return file.split("/")[0].removesuffix(".rs")


def main():
    show_all = "--all" in sys.argv[1:]
    graph = build_graph(load_tree())
    failed = False
    for comp in strongly_connected(graph):
        folders = sorted({folder(f) for f in comp})
        spans = len(folders) > 1
        if not spans and not show_all:
            continue
        reason = ALLOWED.get(frozenset(comp))
        if spans and reason is None:
            label, failed = "CIRCLE", True
        elif spans:
            label = "allowed (" + reason + ")"
        else:
            label = "inside one folder"
        print(f"{label}: {len(comp)} files in {', '.join(folders)}")
        for f in comp:
            deps = sorted(d for d in graph[f] if d in comp)
            print(f"  src/{f} -> {', '.join(deps)}")
    if failed:
        print("module-cycles: import circles span folders; break them or allow them with a reason")
        return 1
    print("module-cycles: no unlisted circle spans more than one folder")
    return 0


if __name__ == "__main__":
    sys.exit(main())
