#!/usr/bin/env python3
"""The crate's module graph: cycles and upward arrows.

Reads every `src/**/*.rs` file (stdlib only, no cargo), finds the paths into the crate it
uses (`use crate::...` trees, `super::`/`self::` paths, child modules named relatively, and
`crate::x::y` written inline), resolves each to the file that defines the item (following
`pub use` re-exports, so `crate::model::Raagr2Net` is an arrow to `model/net.rs`, not to
`model/mod.rs`), and reports:

  (a) cycles: strongly connected components of more than one node, between files and
      between top-level modules;
  (b) upward arrows: a file of a lower layer using a file of a higher layer (LAYERS below).

Code under `#[cfg(test)]` is left out by default (a test may use a higher layer to build its
fixtures: the default model, `analysis::max_abs_diff`); `--tests` counts it too. Intra-doc
links in comments are not arrows (comments and strings are stripped first). A `mod.rs`
reaching into its own subtree (re-exporting `pub use child::Item`, dispatching to
`child::run`) owns it: those arrows are left out of the file cycles, so a child may use the
helpers its parent shares (`cli::print_json`) while the parent dispatches to it; cycles among
siblings (`cli/a.rs` <-> `cli/b.rs`), or through a parent that reaches outside its subtree,
are reported.

Exit status: 0 when there is no cycle and no upward arrow, 1 otherwise.

Usage: python3 tools/module_graph.py [--src DIR] [--tests] [--edges]
"""

import argparse
import os
import re
import sys
from collections import defaultdict

# Layers, lowest first. A module may use modules of its own layer or of lower layers; an arrow
# to a higher layer is reported. Modules of one layer may use one another (cycles are still
# reported).
LAYERS = [
    # Leaf utilities: depend on no other module of the crate.
    ("leaf", ["atomic", "backend", "plot", "render", "timing", "report", "lesson", "util"]),
    # Region codes and scores on label arrays (the dataset's targets use `metrics::Region`).
    ("metrics", ["metrics"]),
    ("data", ["data"]),
    ("model", ["model"]),
    # Training, and whole-volume inference (model + data) with the threshold baseline beside it.
    ("train/inference", ["train", "inference", "baseline", "precision"]),
    ("prune", ["prune"]),
    # Models written out for other runtimes (ONNX, PyTorch).
    ("export", ["export"]),
    # Analyses of pruned models; the embedded defaults (model, case, shipped sweeps).
    ("analysis/defaults", ["analysis", "defaults"]),
    # The classifier study: its own world, which may use every layer above this line; only
    # the layers below it (bench, worker, cli, ui) may use it.
    ("classify", ["classify"]),
    # The plan tree's workspace file, PNG montages of slices and the one-page case report.
    ("plan_tree/montage", ["plan_tree", "montage", "clinical_report"]),
    ("worker", ["worker"]),
    # Benchmarks: `bench --views` times the app's worker itself, so bench sits above it.
    ("bench", ["bench"]),
    ("cli", ["cli"]),
    ("ui", ["ui"]),
]
LAYER_OF = {m: i for i, (_, ms) in enumerate(LAYERS) for m in ms}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
ITEM_DEF = re.compile(
    r"\b(?:struct|enum|fn|trait|type|const|static|union|macro_rules!)\s+(" + IDENT + r")"
)


def strip_code(text):
    """Comments, string and char literals blanked out (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        m = re.match(r'b?r(#*)"', text[i:i + 260]) if c in "rb" else None
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
            continue
        if c == "'":
            # A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])
            if m:
                out.append("' '")
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def item_end(code, start):
    """End of the item starting at `start`: its `;` or the brace closing its first `{`."""
    depth, i, n = 0, start, len(code)
    while i < n:
        c = code[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "{":
            j, d = i, 0
            while j < n:
                if code[j] == "{":
                    d += 1
                elif code[j] == "}":
                    d -= 1
                    if d == 0:
                        return j + 1
                j += 1
            return n
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    return n


def drop_test_code(code):
    """Items under `#[cfg(test)]` blanked out (newlines kept)."""
    while True:
        m = re.search(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", code)
        if not m:
            return code
        end = item_end(code, m.end())
        code = code[: m.start()] + "\n" * code.count("\n", m.start(), end) + code[end:]


def split_top(s, sep=","):
    parts, depth, cur = [], 0, ""
    for c in s:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def expand_use_tree(tree, prefix=()):
    """`a::{b, c::{d as e, *}}` to [(segments, alias)] with alias "*" for a glob."""
    tree = tree.strip()
    m = re.match(r"^(.*?)::\s*\{(.*)\}$", tree, re.S)
    if m or tree.startswith("{"):
        head = m.group(1) if m else ""
        body = m.group(2) if m else tree[1:-1]
        base = prefix + tuple(s.strip() for s in head.split("::") if s.strip())
        out = []
        for part in split_top(body):
            out.extend(expand_use_tree(part, base))
        return out
    alias = None
    m = re.match(r"^(.*)\s+as\s+(" + IDENT + r")$", tree, re.S)
    if m:
        tree, alias = m.group(1), m.group(2)
    segs = prefix + tuple(s.strip() for s in tree.split("::") if s.strip())
    if segs and segs[-1] == "*":
        return [(segs[:-1], "*")]
    if segs and segs[-1] == "self":
        segs = segs[:-1]
    if not segs:
        return []
    return [(segs, alias or segs[-1])]


class Crate:
    def __init__(self, src, with_tests):
        self.src = src
        self.files = {}  # module path (tuple) -> file (relative to src)
        for root, _, names in os.walk(src):
            for name in sorted(names):
                if not name.endswith(".rs"):
                    continue
                rel = os.path.relpath(os.path.join(root, name), src).replace(os.sep, "/")
                if rel == "main.rs":
                    continue  # the binary crate: it reaches the library by its name
                parts = rel[:-3].split("/")
                if parts[-1] in ("mod", "lib"):
                    parts = parts[:-1]
                self.files[tuple(parts)] = rel
        self.code = {}
        self.defs = {}
        for mod, rel in self.files.items():
            with open(os.path.join(src, rel), encoding="utf-8") as f:
                code = strip_code(f.read())
            if not with_tests:
                code = drop_test_code(code)
            self.code[mod] = code
            self.defs[mod] = set(ITEM_DEF.findall(code))
        self.uses = {mod: self.parse_uses(mod) for mod in self.files}

    def is_module(self, path):
        return tuple(path) in self.files

    def absolute(self, mod, segs):
        """A path as written in module `mod` made absolute, or None (another crate)."""
        segs = list(segs)
        if not segs:
            return None
        if segs[0] == "crate":
            return segs[1:]
        if segs[0] in ("self", "super"):
            base = list(mod)
            while segs and segs[0] in ("self", "super"):
                if segs.pop(0) == "super":
                    base = base[:-1]
            return base + segs
        if self.is_module(list(mod) + [segs[0]]):
            return list(mod) + segs
        return None

    def parse_uses(self, mod):
        """[(absolute segments, alias, is_pub)] of the module's `use` declarations."""
        out = []
        for m in re.finditer(r"(?:\bpub(?:\s*\([^)]*\))?\s+)?\buse\s+([^;]*);", self.code[mod]):
            is_pub = m.group(0).lstrip().startswith("pub")
            for segs, alias in expand_use_tree(m.group(1)):
                path = self.absolute(mod, segs)
                if path is not None:
                    out.append((path, alias, is_pub))
        return out

    def resolve(self, path, seen=None):
        """The file defining the item an absolute path names."""
        seen = seen or set()
        key = tuple(path)
        if key in seen:
            return None
        seen.add(key)
        mod, rest = [], list(path)
        while rest and self.is_module(mod + [rest[0]]):
            mod.append(rest.pop(0))
        if not rest:
            return self.files[tuple(mod)]
        name = rest[0]
        if name in self.defs[tuple(mod)]:
            return self.files[tuple(mod)]
        for target, alias, is_pub in self.uses[tuple(mod)]:
            if is_pub and alias == name:
                found = self.resolve(target + rest[1:], seen)
                if found:
                    return found
        for target, alias, is_pub in self.uses[tuple(mod)]:
            if is_pub and alias == "*" and self.is_module(target):
                if name in self.defs[tuple(target)] or any(
                    a == name for _, a, p in self.uses[tuple(target)] if p
                ):
                    found = self.resolve(target + rest, seen)
                    if found:
                        return found
        return self.files[tuple(mod)]

    def edges(self):
        """{(from file, to file): [path as written, ...]}."""
        found = defaultdict(set)
        for mod, rel in self.files.items():
            code = self.code[mod]
            aliases = {}
            for path, alias, is_pub in self.uses[mod]:
                target = self.resolve(path)
                if not target or target == rel:
                    continue
                if is_pub and path[: len(mod)] == list(mod) and self.is_facade(rel):
                    continue  # a mod.rs re-exporting its own subtree
                found[(rel, target)].add("::".join(["crate"] + path))
                if alias != "*" and self.is_module(path):
                    aliases[alias] = path
            body = re.sub(r"(?:\bpub(?:\s*\([^)]*\))?\s+)?\buse\s+[^;]*;", " ", code)
            for m in re.finditer(
                r"(?<![A-Za-z0-9_:])(" + IDENT + r")((?:\s*::\s*" + IDENT + r")+)", body
            ):
                segs = [m.group(1)] + [s.strip() for s in m.group(2).split("::") if s.strip()]
                if segs[0] in aliases:
                    path = aliases[segs[0]] + segs[1:]
                else:
                    path = self.absolute(mod, segs)
                if path is None:
                    continue
                target = self.resolve(path)
                if target and target != rel:
                    found[(rel, target)].add("::".join(["crate"] + path))
        return found

    @staticmethod
    def is_facade(rel):
        return rel.endswith("mod.rs") or rel == "lib.rs"


def owns(a, b):
    """Whether file `a` is the `mod.rs` (or `lib.rs`) of a folder holding file `b`."""
    if a == "lib.rs":
        return True
    return a.endswith("/mod.rs") and b.startswith(a[: -len("mod.rs")])


def top_module(rel):
    first = rel.split("/")[0]
    return first[:-3] if first.endswith(".rs") else first


def cycles(nodes, adjacency):
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(adjacency.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adjacency.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return sorted(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--src", default=os.path.join(here, "..", "src"))
    parser.add_argument("--tests", action="store_true", help="count #[cfg(test)] code too")
    parser.add_argument("--edges", action="store_true", help="list the top-level arrows")
    args = parser.parse_args()

    crate = Crate(args.src, args.tests)
    edges = crate.edges()
    problems = 0

    unknown = sorted({top_module(r) for r in crate.files.values()} - set(LAYER_OF) - {"lib.rs"})
    unknown = [u for u in unknown if u != "lib"]
    if unknown:
        print("modules without a layer (add them to LAYERS): " + ", ".join(unknown))
        problems += len(unknown)

    file_adj = defaultdict(set)
    top_adj = defaultdict(set)
    top_why = defaultdict(set)
    for (a, b) in edges:
        if not owns(a, b):
            file_adj[a].add(b)
        ta, tb = top_module(a), top_module(b)
        if ta != tb:
            top_adj[ta].add(tb)
            top_why[(ta, tb)].add(f"{a} -> {b}")

    print(f"{len(crate.files)} files, {len(edges)} file arrows, "
          f"{sum(len(v) for v in top_adj.values())} top-level arrows"
          + (" (tests counted)" if args.tests else " (#[cfg(test)] code left out)"))
    print("layers, lowest first: " + " < ".join(
        "{" + ", ".join(ms) + "}" if len(ms) > 1 else ms[0] for _, ms in LAYERS))

    if args.edges:
        print("\ntop-level arrows:")
        for a in sorted(top_adj):
            print(f"  {a} -> {', '.join(sorted(top_adj[a]))}")

    def report_cycles(title, components, adj, reasons):
        """Prints each cycle and, per arrow inside it, why it exists; returns how many."""
        print(f"\n{title}: {len(components)}")
        for component in components:
            members = set(component)
            print("  " + " <-> ".join(component))
            for a in component:
                for b in sorted(adj[a] & members):
                    for why in reasons(a, b):
                        print(f"      {why}")
        return len(components)

    problems += report_cycles(
        "file cycles", cycles(set(crate.files.values()), file_adj), file_adj,
        lambda a, b: [f"{a} -> {b}: {', '.join(sorted(edges[(a, b)]))}"])
    problems += report_cycles(
        "top-level module cycles",
        cycles({top_module(r) for r in crate.files.values()}, top_adj), top_adj,
        lambda a, b: sorted(top_why[(a, b)]))

    upward = []
    for (a, b), paths in sorted(edges.items()):
        la, lb = LAYER_OF.get(top_module(a)), LAYER_OF.get(top_module(b))
        if la is not None and lb is not None and lb > la:
            upward.append((a, b, paths))
    print(f"\nupward arrows: {len(upward)}")
    for a, b, paths in upward:
        print(f"  {a} ({LAYERS[LAYER_OF[top_module(a)]][0]}) -> {b} "
              f"({LAYERS[LAYER_OF[top_module(b)]][0]}): {', '.join(sorted(paths))}")
    problems += len(upward)

    print("\nclean" if problems == 0 else f"\n{problems} problem(s)")
    return 0 if problems == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
