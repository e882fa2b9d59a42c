"""--tree of `specfmt generate` and `specfmt eval` (and benchmarks/speculative.py): the grammar of a tree on the
command line, and which tree a run decodes with. A value that names no tree, a tree given with --k, and a tree
for a draft that cannot branch are usage errors in one line, exit status 2 (specfmt.cli_runtime).

Spec: spec/trees.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from specfmt.cli_common import UsageError
from specfmt.cli_runtime import one_line

TREE_GRAMMAR = ("dynamic:T,K,D (EAGLE-2's tree: speculative_tokens T, expansion_factor K, depth D), static:I,B,D "
                "(the full tree: initial_branching_factor I, branching_factor B, depth D), or static:PATHS, a JSON "
                "list of paths such as [[0],[1],[0,0]] (EAGLE's eagle_choices), or static:@FILE holding one")


def parse_tree(text: str):
    """The tree a --tree value names (TREE_GRAMMAR: each method's v1.0 fields in the schema's order, or a path
    list); ValueError, one line, for a value that names none. Spec: spec/trees.md#TRE-2, spec/trees.md#TRE-4"""
    from specfmt import tree

    kind, _, rest = text.partition(":")
    if kind == "dynamic":
        return tree.DynamicTree(*_three_counts(text, rest))
    if kind == "static" and rest.startswith(("[", "@")):
        paths = _path_list(text, rest)
        problems = tree.path_problems(paths)
        if problems:
            raise ValueError(f"--tree {text}: the paths are no tree (spec/trees.md#TRE-2): {'; '.join(problems)}")
        return tree.StaticTree(tuple(tuple(path) for path in paths))
    if kind == "static":
        return tree.full_tree(*_three_counts(text, rest))
    raise ValueError(f"--tree {text}: expected {TREE_GRAMMAR}")


def _three_counts(text: str, rest: str) -> list[int]:
    parts = rest.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        kind = text.partition(":")[0]
        raise ValueError(f"--tree {text}: expected three integers >= 1 after {kind}: "
                         f"({'T,K,D' if kind == 'dynamic' else 'I,B,D'}), found {json.dumps(rest)}")
    return [int(p) for p in parts]


def _path_list(text: str, rest: str):
    """The JSON after static: (or in the file after static:@)."""
    source = rest
    if rest.startswith("@"):
        try:
            source = Path(rest[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--tree {text}: cannot read {rest[1:]}: {one_line(e)}") from None
    try:
        return json.loads(source)
    except json.JSONDecodeError as e:
        raise ValueError(f"--tree {text}: not a JSON list of paths: {e}") from None


def tree_option(args: argparse.Namespace):
    """--tree parsed (None when absent); UsageError for a value that names no tree, or given with --k."""
    if getattr(args, "tree", None) is None:
        return None
    if args.k is not None:
        raise UsageError(f"--k {args.k} and --tree {args.tree}: --k sets a chain's drafts per step and --tree a "
                         "tree; give one")
    try:
        return parse_tree(args.tree)
    except ValueError as e:
        raise UsageError(one_line(e, 400)) from None


def check_branches(draft, config: dict, source: str) -> None:
    """A tree only for a draft that branches: UsageError naming `source` (what asked for the tree) otherwise.
    Spec: spec/trees.md#TRE-5"""
    if not hasattr(draft, "branch"):
        raise UsageError(f"{source}: {config['speculators_model_type']} drafts cannot branch; spec/trees.md#TRE-5 "
                         "defines trees for eagle3, eagle, mtp, peagle and medusa drafts only")


def shape_of_run(config: dict, draft, args: argparse.Namespace, shape):
    """The tree generate or eval runs: --tree (`shape`, parsed), else the checkpoint's default method when it is a tree
    and --k is not given; None for a chain. Checked against the draft (check_branches)."""
    from specfmt.runtime import default_method, default_shape

    source = f"--tree {args.tree}"
    if shape is None and args.k is None:
        shape = default_shape(config)
        source = (f"--draft {args.draft}: its default proposal method {default_method(config)['proposal_type']} "
                  "(pass --k for a chain)")
    if shape is not None:
        check_branches(draft, config, source)
    return shape
