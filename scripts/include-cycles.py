#!/usr/bin/env python3
"""Finds include circles between the project's C modules (a module is a
.c file and its .h, wherever the header lives: include/X/Y.h or X/Y.h).
Module A depends on module B when A's .c or .h includes B's header; a
circle (A needs B needs ... needs A) is reported and fails.  Run by
tools/lint.sh; with --dot, prints the graph for Graphviz instead."""

import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DIRS = ["block", "crypto", "migration", "monitor", "nbd", "system", "util",
        "tools"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module_of(path):
    """'migration/colo-cache.c' and 'include/migration/colo-cache.h' (or
    'migration/colo-cache.h') are module 'migration/colo-cache'."""
    rel = os.path.relpath(path, ROOT)
    if rel.startswith("include" + os.sep):
        rel = rel[len("include") + 1:]
    return os.path.splitext(rel)[0]


def sources():
    for top in DIRS + ["include"]:
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith((".c", ".h")):
                    yield os.path.join(d, f)


def graph():
    known = {module_of(p) for p in sources()}
    edges = {}
    for p in sources():
        a = module_of(p)
        with open(p, errors="replace") as f:
            for inc in INCLUDE.findall(f.read()):
                b = os.path.splitext(inc)[0]
                if b in known and b != a:
                    edges.setdefault(a, set()).add(b)
    return known, edges


def circles(nodes, edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(edges.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    nodes, edges = graph()
    if "--dot" in sys.argv:
        print("digraph includes {\n  rankdir=LR; node [shape=box];")
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print('  "%s" -> "%s";' % (a, b))
        print("}")
        return 0
    found = circles(nodes, edges)
    for comp in found:
        print("include circle: " + " <-> ".join(comp))
    print("%d modules, %d dependencies, %d circles" % (
        len(nodes), sum(len(v) for v in edges.values()), len(found)))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
