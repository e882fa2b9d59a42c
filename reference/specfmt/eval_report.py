"""How specfmt.evaluate's results are shown: a two-column table per prompt set, a summary with one row per set
(the columns a reader of speculative-decoding papers looks for: tau, acceptance by position, speedup), and a PNG
of acceptance by draft position with one group of bars per set."""

from __future__ import annotations


class PlotError(RuntimeError):
    """Plotting was asked for and matplotlib is not installed."""


def _acceptance(result: dict) -> str:
    return "[" + ", ".join(f"{a:.3f}" for a in result["acceptance_by_position"]) + "]"


def _figure(value: float | None, fmt: str, none: str = "-") -> str:
    """A figure that a tree's result leaves null (alpha, bound) as `none`."""
    return none if value is None else format(value, fmt)


def tree_label(tree: dict | None) -> str:
    """A result's "tree" in a few words: "dynamic_tree 16,4,5" (T,K,D) or "static_tree of 8 paths, depth 3"."""
    if tree is None:
        return "chain"
    if tree["proposal_type"] == "dynamic_tree":
        return f"dynamic_tree {tree['speculative_tokens']},{tree['expansion_factor']},{tree['depth']}"
    return f"static_tree of {len(tree['paths'])} paths, depth {max(len(p) for p in tree['paths'])}"


def proposal_label(result: dict) -> str:
    """What a result measured: "k 3", or the tree with its nodes per step."""
    if result.get("tree") is None:
        return f"k {result['k']}"
    return f"tree {tree_label(result['tree'])} ({result['nodes_per_step']:.1f} nodes per step)"


def format_text(result: dict) -> str:
    """The result as a short two-column table, headed by its prompt set where it has one."""
    tree = result.get("tree") is not None
    rows = [("plain tok/s", f"{result['tokens_per_s_plain']:.1f}"),
            ("speculative tok/s", f"{result['tokens_per_s_speculative']:.1f}"),
            ("speedup", f"{result['speedup']:.3f}"), ("tau", f"{result['tau']:.3f}"),
            ("alpha", _figure(result["alpha"], ".3f")),
            ("acceptance by depth" if tree else "acceptance by position", _acceptance(result)),
            ("c per node" if tree else "c", f"{result['c']:.4f}"),
            ("r", f"{result['r']:.3f}" + (f" ({result['nodes_per_step']:.1f} + 1 rows)" if tree else "")),
            ("bound", _figure(result["bound"], ".3f", "none for a tree (specfmt.evaluate)")),
            ("speedup / bound", _figure(result["speedup_over_bound"], ".3f")),
            ("identical", f"{result['identical']}/{result['prompts']}"
                          + (f", first difference at new token {sorted(result['first_difference'])}"
                             if result.get("first_difference") else ""))]
    head = (f"{proposal_label(result)}, {result['prompts']} prompts, {result['max_new_tokens']} new tokens, "
            f"{result['dtype']} on {result['device']}, {result['threads']} threads, load {result['load_average']}")
    if result.get("prompt_set"):
        head = f"{result['prompt_set']}: {head}"
    return "\n".join([head] + [f"  {name:<24}{value}" for name, value in rows])


def format_summary(results: list[dict]) -> str:
    """One row per prompt set: prompts, tau, acceptance by position, speedup over plain decoding and the bound."""
    width = max(len("prompt set"), *(len(r.get("prompt_set") or "") for r in results))
    lines = [f"{'prompt set':<{width}} {'prompts':>7} {'tau':>6} {'speedup':>7} {'bound':>6}  acceptance by position"]
    for r in results:
        bound = "-" if r["bound"] is None else f"{r['bound']:.3f}x"
        lines.append(f"{r.get('prompt_set') or '':<{width}} {r['prompts']:>7} {r['tau']:>6.3f} {r['speedup']:>6.3f}x "
                     f"{bound:>6}  {_acceptance(r)}")
    return "\n".join(lines)


def format_sets(results: list[dict]) -> str:
    """A table per set, then the summary when there are several sets."""
    tables = [format_text(r) for r in results]
    if len(results) > 1:
        tables.append(format_summary(results))
    return "\n\n".join(tables)


def plot(results: dict | list[dict], path) -> None:
    """A PNG at `path`: acceptance by draft position, one group of bars per prompt set, and each set's tau,
    speedup and bound. Raises PlotError when matplotlib is absent."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError("plotting needs matplotlib (pip install specfmt[plots])") from None
    results = [results] if isinstance(results, dict) else results
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)  # the Agg backend, without touching pyplot's global state
    ax = fig.add_subplot()
    k, width = results[0]["k"], 0.8 / len(results)
    for i, r in enumerate(results):
        offset = (i - (len(results) - 1) / 2) * width
        label = (f"{r.get('prompt_set') or 'prompts'}: tau {r['tau']:.2f}, speedup {r['speedup']:.2f}x"
                 + ("" if r["bound"] is None else f" (bound {r['bound']:.2f}x)"))
        ax.bar([j + 1 + offset for j in range(k)], r["acceptance_by_position"], width, label=label)
    positions = list(range(1, k + 1))
    if results[0].get("tree") is None:
        ax.set(xlabel="draft position j", ylabel="fraction of steps accepting draft j",
               title=f"acceptance by position, k = {k} ({results[0]['dtype']})")
    else:
        ax.set(xlabel="depth j", ylabel="fraction of steps accepting a node at depth j",
               title=f"acceptance by depth, {tree_label(results[0]['tree'])} ({results[0]['dtype']})")
    ax.set(ylim=(0, 1.05), xticks=positions)
    ax.legend(fontsize=7, loc="upper right")
    fig.savefig(path)
