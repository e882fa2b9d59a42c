"""`specfmt generate` and `specfmt eval`: the reference runtime on the command line. torch, safetensors and (for
text) tokenizers are imported inside the commands, so that validate, inspect and schema run without them; a
missing one is reported by specfmt.cli as the extra to install.
"""

from __future__ import annotations

import argparse
import json
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


def load_verifier(path: Path, device: str, dtype: str):
    """The verifier at `path`; UsageError, on one line, when the reference runtime cannot load it."""
    from specfmt.runtime import pick_dtype
    from specfmt.verifier import Verifier

    try:
        return Verifier.from_pretrained(path, device, pick_dtype(dtype))
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"--verifier {path}: the reference runtime cannot load it: {one_line(e)}") from None


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
    verifier_dir, draft_dir = model_dirs(args.verifier, args.draft)
    if min(args.max_new_tokens, 1 if args.k is None else args.k) < 1:
        raise UsageError(f"--k and --max-new-tokens: expected >= 1, found {args.k} and {args.max_new_tokens}")
    tokenizer = tokenizer_of(verifier_dir, needed=args.prompt is not None)
    torch = import_torch()
    from specfmt.findings import ValidationError
    from specfmt.generate import generate
    from specfmt.runtime import DraftRejected, load_draft

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda, but torch sees no GPU")
    prompt = tokenizer.encode(args.prompt).ids if args.prompt is not None else args.prompt_ids
    verifier = load_verifier(verifier_dir, args.device, args.dtype)
    check_prompt(prompt, verifier.vocab_size, "--prompt" if args.prompt is not None else "--prompt-ids")
    try:
        draft, config = load_draft(draft_dir, verifier)
    except ValidationError as e:
        for f in e.findings:
            print(f)
        return 1
    except DraftRejected as e:
        raise UsageError(f"--draft {args.draft} does not run with --verifier {args.verifier}: {e}") from None
    proposal = proposal_of(config, args)
    bar, limit = Progress(sys.stderr), args.max_new_tokens
    result = generate(verifier, draft, prompt, limit, proposal, args.seed,
                      progress=lambda n: bar.show(f"generate: {min(n, limit)}/{limit} tokens"))
    bar.clear()
    print_generation(result, prompt, proposal, tokenizer, args.format)
    return 0


def print_generation(result, prompt: list[int], proposal, tokenizer, fmt: str) -> None:
    text = tokenizer.decode(result.tokens) if tokenizer is not None else None
    stats = result.stats.to_json()
    lossy = proposal.kind == "greedy" and proposal.verifier_accept_k > 1
    if fmt == "json":
        print(json.dumps({"prompt_ids": prompt, "tokens": result.tokens, "text": text, "proposal": proposal.kind,
                          "lossy": lossy, "stats": stats}))
        return
    print(text if text is not None else " ".join(map(str, result.tokens)))
    print(f"--\nsteps {stats['steps']}, k {stats['k']}, tau {stats['tau']:.3f}, "
          f"acceptance by position {[round(a, 3) for a in stats['acceptance_by_position']]}")
    if lossy:
        print("note: verifier_accept_k > 1 is lossy (spec/verification.md#VRF-4)")


def eval_prompts(verifier_dir: str, prompts_file: str, limit: int | None = None) -> tuple[list[list[int]], list[int]]:
    """Token ids of the first `limit` records of a prompt file, and the verifier's end-of-sequence ids with
    the tokenizer's eos_token first (decoding stops on the first). Raises ValueError for a usage mistake."""
    from specfmt.text import Text, TextError, _ids, read_prompts

    path = Path(prompts_file)
    if not path.is_file():
        raise TextError(f"{path}: no such prompt file")
    records = read_prompts(path)[:limit]
    if not records:
        raise TextError(f"{path}: no prompt in the file")
    try:
        text = Text.from_verifier(verifier_dir)
    except TextError:
        if any("prompt_ids" not in r for r in records):
            raise
        text = None
    prompts = [text.prompt_ids(r) if text else [int(i) for i in r["prompt_ids"]] for r in records]
    if text is None:
        eos = set()
        for name in ("generation_config.json", "config.json"):
            if (Path(verifier_dir) / name).is_file():
                eos |= _ids(json.loads((Path(verifier_dir) / name).read_text(encoding="utf-8")).get("eos_token_id"))
        return prompts, sorted(eos)
    return prompts, text.stop_ids()


def cmd_eval(args: argparse.Namespace) -> int:
    import importlib.util

    verifier_dir, draft_dir = model_dirs(args.verifier, args.draft)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib, which is not installed: pip install 'specfmt[plots]'")
    if min(args.k, args.max_new_tokens, args.limit or 1, args.threads or 1) < 1:
        raise UsageError("--k, --max-new-tokens, --limit and --threads: expected >= 1")
    import_torch()
    from specfmt.evaluate import evaluate, format_text, plot, set_threads
    from specfmt.findings import ValidationError
    from specfmt.runtime import load_draft

    try:
        prompts, eos_ids = eval_prompts(str(verifier_dir), args.prompts, args.limit)
    except (ValueError, TypeError, KeyError) as e:
        raise UsageError(one_line(e)) from None
    set_threads(args.threads)
    verifier = load_verifier(verifier_dir, "cpu", args.dtype)
    for prompt in prompts:
        check_prompt(prompt, verifier.vocab_size, args.prompts)
    try:
        draft, _ = load_draft(draft_dir, verifier)
        result = evaluate(verifier, draft, prompts, args.k, args.max_new_tokens, eos_ids)
    except ValidationError as e:
        for f in e.findings:
            print(f)
        return 1
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(one_line(e)) from None
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.plot:
        plot(result, args.plot)
    print(json.dumps(result, indent=2) if args.format == "json" else format_text(result))
    return 0


MODEL_DIRS = "a directory, or a hub id ORG/NAME[@REVISION] already in the local Hugging Face cache"


def add_parsers(sub) -> None:
    g = sub.add_parser("generate", help="speculative decoding with the reference runtime")
    g.add_argument("--verifier", required=True, help=f"the Hugging Face model the draft is for: {MODEL_DIRS}")
    g.add_argument("--draft", required=True, help=f"the specfmt draft checkpoint: {MODEL_DIRS}")
    prompt = g.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="text, encoded with the verifier's tokenizer.json (needs specfmt[text])")
    prompt.add_argument("--prompt-ids", type=int, nargs="+", metavar="ID", help="token ids of the prompt")
    g.add_argument("--proposal", choices=("greedy", "sampling"),
                   help="proposal method (default: the checkpoint's default_proposal_method)")
    g.add_argument("--k", type=int, help="draft tokens per step (default: the method's speculative_tokens)")
    g.add_argument("--temperature", type=float, default=1.0, help="of the sampling proposal; ignored by greedy")
    g.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate after the prompt")
    g.add_argument("--seed", type=int, default=0, help="seed of the sampling proposal's random draws")
    g.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where verifier and draft run")
    g.add_argument("--dtype", choices=("float32", "float64", "bfloat16", "float16"), default="float32",
                   help="of the verifier's and the draft's weights and activations")
    g.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: the output and a statistics line; json: one object with tokens and stats")
    g.set_defaults(func=cmd_generate)
    e = sub.add_parser("eval", help="speed of speculative against plain greedy decoding on a prompt file")
    e.add_argument("--verifier", required=True, help=f"the Hugging Face model the draft is for: {MODEL_DIRS}")
    e.add_argument("--draft", required=True, help=f"the specfmt draft checkpoint: {MODEL_DIRS}")
    e.add_argument("--prompts", required=True, help="JSON lines of {prompt|messages|prompt_ids}, or text lines")
    e.add_argument("--k", type=int, default=3, help="draft tokens per step")
    e.add_argument("--max-new-tokens", type=int, default=128, help="tokens to generate per prompt")
    e.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="of the verifier and draft")
    e.add_argument("--threads", type=int, help="torch threads (default: the CPUs this process may use)")
    e.add_argument("--limit", type=int, help="the first N prompts only (default: all)")
    e.add_argument("--out", help="write the result JSON here")
    e.add_argument("--plot", help="write a PNG of acceptance by position here (needs specfmt[plots])")
    e.add_argument("--format", choices=("text", "json"), default="text", help="of the result on stdout")
    e.set_defaults(func=cmd_eval)
