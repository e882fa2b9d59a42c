"""`specfmt generate` (and what `specfmt eval`, in specfmt.cli_eval, shares): the reference runtime on the command
line. torch, safetensors and (for text) tokenizers are imported inside the commands, so that validate, inspect
and schema run without them; a missing one is reported by specfmt.cli as the extra to install.

A draft made for another verifier (specfmt.binding: a hidden size, vocabulary or layer count that the verifier's
config.json contradicts, an aux layer id past its last layer) is refused before any forward, in one line that
names both sides, with exit status 2: neither checkpoint is in error (that is exit 1, with its findings), the
pair given on the command line is wrong, as --verifier and --draft given swapped are.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from specfmt.cli_common import Progress, UsageError, config_kind, import_torch, local_dir
from specfmt.schemas import LAYER_FAMILIES


def one_line(error: Exception, limit: int = 300) -> str:
    """An exception's message on one line, cut at `limit` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def model_dirs(verifier_arg: str, draft_arg: str) -> tuple[Path, Path]:
    """--verifier and --draft as directories (local paths or cached hub ids). UsageError for a missing one, and
    one that says which is which when a draft is given as the verifier or a verifier as the draft."""
    verifier, draft = local_dir(verifier_arg), local_dir(draft_arg)
    for option, arg, path in (("--verifier", verifier_arg, verifier), ("--draft", draft_arg, draft)):
        if not path.exists():
            raise UsageError(f"{option} {arg}: no such directory")
        if not path.is_dir():
            raise UsageError(f"{option} {arg}: not a directory; pass the one that contains it, {path.parent}")
    kinds = config_kind(verifier), config_kind(draft)
    if kinds == ("draft", "model"):
        raise UsageError(f"--verifier and --draft are swapped: {verifier_arg} is a specfmt draft and {draft_arg} a "
                         f"Hugging Face model; pass --verifier {draft_arg} --draft {verifier_arg}")
    if kinds[0] == "draft":
        raise UsageError(f"--verifier {verifier_arg} is a specfmt draft (its config.json names "
                         "speculators_model_type); pass it as --draft, and as --verifier the model it drafts for")
    if kinds[1] == "model":
        raise UsageError(f"--draft {draft_arg} is a Hugging Face model, not a specfmt draft (its config.json names "
                         "no speculators_model_type); pass it as --verifier, and as --draft the draft checkpoint")
    if kinds[0] == "unknown":
        raise UsageError(f"--verifier {verifier_arg}: not a Hugging Face model directory; expected a config.json "
                         "object with model_type")
    family = json.loads((verifier / "config.json").read_text(encoding="utf-8")).get("model_type")
    if family not in LAYER_FAMILIES:
        raise UsageError(f"--verifier {verifier_arg}: the reference runtime runs {', '.join(LAYER_FAMILIES)} "
                         f"verifiers; expected one of those model_type values, found {json.dumps(family)}")
    return verifier, draft


# The integer options that count something, each at least 1 (absent options and None defaults are not checked).
COUNTS = ("k", "max_new_tokens", "threads", "limit")


def check_numbers(args: argparse.Namespace) -> None:
    """Each count option >= 1 and --temperature a finite number >= 0: one UsageError naming the one bad option."""
    for name in COUNTS:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')}: expected an integer >= 1, found {value}")
    temperature = getattr(args, "temperature", None)
    if temperature is not None and not (math.isfinite(temperature) and temperature >= 0):
        raise UsageError(f"--temperature: expected a finite number >= 0, found {temperature}")


def check_device(device: str, torch) -> None:
    """--device cuda only where torch sees a GPU."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda, but torch sees no GPU; pass --device cpu")


def bound_draft(draft_dir: Path, verifier_dir: Path, verifier, args: argparse.Namespace):
    """The draft bound to the verifier and its resolved config. ValidationError (the draft's findings) passes
    through; a draft made for another verifier or that this runtime cannot run is a UsageError in one line."""
    from specfmt.runtime import BindingError, DraftRejected, load_draft

    try:
        return load_draft(draft_dir, verifier, verifier_dir=verifier_dir)
    except BindingError as e:
        raise UsageError(f"--draft {args.draft} was made for another verifier than --verifier {args.verifier}: "
                         f"{e}") from e
    except DraftRejected as e:
        raise UsageError(f"--draft {args.draft} does not run with --verifier {args.verifier}: {e}") from e


def load_verifier(path: Path, device: str, dtype: str):
    """The verifier at `path`; UsageError, on one line, when the reference runtime cannot load it."""
    from specfmt.runtime import pick_dtype
    from specfmt.verifier import Verifier

    try:
        return Verifier.from_pretrained(path, device, pick_dtype(dtype))
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"--verifier {path}: the reference runtime cannot load it: {one_line(e)}") from e


def check_prompt(prompt: list[int], vocab_size: int, option: str) -> None:
    """Every prompt id inside the verifier's vocabulary, and at least one."""
    if not prompt:
        raise UsageError(f"{option}: the prompt has no token")
    outside = [i for i in prompt if not 0 <= i < vocab_size]
    if outside:
        raise UsageError(f"{option}: token ids outside the verifier's vocabulary; expected ids in "
                         f"[0, {vocab_size}), found {outside}")


def tokenizer_of(verifier_dir: Path, needed: bool):
    """The verifier's tokenizer.json through the optional `tokenizers` package. When `needed` (--prompt), a
    missing file is a UsageError and a missing package a ModuleNotFoundError; otherwise either gives None."""
    path = verifier_dir / "tokenizer.json"
    if not path.is_file():
        if needed:
            raise UsageError(f"--prompt needs the verifier's tokenizer, and {path} is absent; pass --prompt-ids")
        return None
    try:
        from tokenizers import Tokenizer
    except ModuleNotFoundError:
        if needed:
            raise
        return None
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a plain Exception for a file it cannot read
        raise UsageError(f"{path}: not a tokenizer the tokenizers package reads: {one_line(e)}") from None


def proposal_of(config: dict, args: argparse.Namespace):
    """The checkpoint's default proposal method with the command line's changes."""
    from specfmt.runtime import default_proposal

    try:
        proposal = default_proposal(config)
    except (ValueError, NotImplementedError) as e:
        raise UsageError(f"--draft {args.draft}: {e}") from None
    proposal.kind = args.proposal or proposal.kind
    if proposal.kind == "sampling":
        if args.temperature <= 0:
            raise UsageError(f"--temperature: sampling divides by it; expected > 0, found {args.temperature}")
        proposal.temperature = args.temperature
    proposal.speculative_tokens = args.k or proposal.speculative_tokens
    return proposal


def cmd_generate(args: argparse.Namespace) -> int:
    from specfmt.cli_tree import shape_of_run, tree_option

    check_numbers(args)
    shape = tree_option(args)
    verifier_dir, draft_dir = model_dirs(args.verifier, args.draft)
    tokenizer = tokenizer_of(verifier_dir, needed=args.prompt is not None)
    check_device(args.device, import_torch())
    from specfmt.findings import ValidationError
    from specfmt.generate import generate

    prompt = tokenizer.encode(args.prompt).ids if args.prompt is not None else args.prompt_ids
    verifier = load_verifier(verifier_dir, args.device, args.dtype)
    check_prompt(prompt, verifier.vocab_size, "--prompt" if args.prompt is not None else "--prompt-ids")
    try:
        draft, config = bound_draft(draft_dir, verifier_dir, verifier, args)
    except ValidationError as e:
        for f in e.findings:
            print(f)
        return 1
    proposal = proposal_of(config, args)
    shape = shape_of_run(config, draft, args, shape)
    bar, limit = Progress(sys.stderr), args.max_new_tokens
    try:
        result = generate(verifier, draft, prompt, limit, proposal, args.seed, shape=shape,
                          progress=lambda n: bar.show(f"generate: {min(n, limit)}/{limit} tokens"))
    except ValueError as e:  # a k or depth the draft cannot propose (medusa's heads, mlp_speculator's n_predict)
        bar.clear()
        option = f"--k {proposal.speculative_tokens}" if shape is None else f"--tree {args.tree or 'of the draft'}"
        raise UsageError(f"{option}: {one_line(e)}") from e
    bar.clear()
    print_generation(result, prompt, proposal, tokenizer, args.format, shape)
    return 0


def print_generation(result, prompt: list[int], proposal, tokenizer, fmt: str, shape=None) -> None:
    """The tokens (or text) and the step statistics; with a tree, its shape and the nodes verified per step, and
    acceptance by depth (spec/trees.md#TRE-9)."""
    from specfmt.eval_report import tree_label
    from specfmt.evaluate import describe_tree

    text = tokenizer.decode(result.tokens) if tokenizer is not None else None
    stats = result.stats.to_json()
    stats["nodes_per_step"] = sum(result.stats.drafted) / max(len(result.stats.drafted), 1)
    lossy = proposal.kind == "greedy" and proposal.verifier_accept_k > 1
    if fmt == "json":
        print(json.dumps({"prompt_ids": prompt, "tokens": result.tokens, "text": text, "proposal": proposal.kind,
                          "tree": describe_tree(shape), "lossy": lossy, "stats": stats}))
        return
    print(text if text is not None else " ".join(map(str, result.tokens)))
    acceptance = [round(a, 3) for a in stats["acceptance_by_position"]]
    if shape is None:
        print(f"--\nsteps {stats['steps']}, k {stats['k']}, tau {stats['tau']:.3f}, "
              f"acceptance by position {acceptance}")
    else:
        print(f"--\nsteps {stats['steps']}, tree {tree_label(describe_tree(shape))}, {stats['nodes_per_step']:.1f} "
              f"nodes per step, tau {stats['tau']:.3f}, acceptance by depth {acceptance}")
    if lossy:
        print("note: verifier_accept_k > 1 is lossy (spec/verification.md#VRF-4)")


MODEL_DIRS = "a directory, or a hub id ORG/NAME[@REVISION] already in the local Hugging Face cache"


def add_parsers(sub) -> None:
    """generate, then eval (specfmt.cli_eval)."""
    from specfmt.cli_eval import add_parser as add_eval_parser
    from specfmt.cli_tree import TREE_GRAMMAR

    g = sub.add_parser("generate", help="speculative decoding with the reference runtime")
    g.add_argument("--verifier", required=True, help=f"the Hugging Face model the draft is for: {MODEL_DIRS}")
    g.add_argument("--draft", required=True, help=f"the specfmt draft checkpoint: {MODEL_DIRS}")
    prompt = g.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="text, encoded with the verifier's tokenizer.json (needs specfmt[text])")
    prompt.add_argument("--prompt-ids", type=int, nargs="+", metavar="ID", help="token ids of the prompt")
    g.add_argument("--proposal", choices=("greedy", "sampling"),
                   help="proposal method (default: the checkpoint's default_proposal_method)")
    g.add_argument("--k", type=int, help="draft tokens per step of a chain (default: the method's "
                   "speculative_tokens, or the method's tree when it is a static_tree or dynamic_tree)")
    g.add_argument("--tree", help=f"propose and verify a tree instead of a chain (spec/trees.md): {TREE_GRAMMAR}")
    g.add_argument("--temperature", type=float, default=1.0, help="of the sampling proposal; ignored by greedy")
    g.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate after the prompt")
    g.add_argument("--seed", type=int, default=0, help="seed of the sampling proposal's random draws")
    g.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where verifier and draft run")
    g.add_argument("--dtype", choices=("float32", "float64", "bfloat16", "float16"), default="float32",
                   help="of the verifier's and the draft's weights and activations")
    g.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: the output and a statistics line; json: one object with tokens and stats")
    g.set_defaults(func=cmd_generate)
    add_eval_parser(sub)
