"""Self-synthesized prompts (Magpie: Xu et al. 2024, "Magpie: Alignment Data Synthesis from Scratch by Prompting
Aligned LLMs with Nothing", arXiv:2406.08464): given only its chat template's text up to a user turn's content,
an instruction-tuned verifier writes a user turn itself, so a draft can be trained on prompts of the kind its
verifier expects with no data set and no network.

The user prefix and the end-of-turn token come from the verifier's own chat template (tokenizer_config.json):
the template renders one user turn whose content is a marker; the text before the marker is the prefix (with any
system turn the template adds by default), and the first token after it ends the turn. Each round samples BATCH
turns at TEMPERATURE with a torch.Generator seeded by the seed, stopped at the end-of-turn token or an
end-of-sequence id. A turn is kept when it ended within MAX_TOKENS, has at least MIN_TOKENS tokens, holds no
special token, and is no near copy (specfmt.neardup) of a kept turn or of an excluded text (the evaluation
sets). Rounds stop when `count` turns are kept or after ROUNDS_PER_BATCH * ceil(count / BATCH) rounds: the same
verifier, dtype and seed give the same prompts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from specfmt.generate import generate_batch
from specfmt.neardup import NearIndex
from specfmt.text import Text, TextError
from specfmt.verifier import Verifier

BATCH = 16  # turns sampled together; 64 is no faster on 2 CPU threads (5.9 tok/s against 6.2 and 6.5, side by side)
TEMPERATURE = 0.8  # Magpie samples at 1.0; SmolLM2-135M writes more coherent turns at 0.8 (16 of each, read)
MIN_TOKENS = 4
MAX_TOKENS = 128
ROUNDS_PER_BATCH = 8  # at most this many rounds for every BATCH prompts asked for
_MARKER = "\x00specfmt-user-turn\x00"


def user_turn(text: Text) -> tuple[list[int], set[int]]:
    """(token ids of the chat template up to a user turn's content, the ids that end the turn)."""
    rendered = text.render_chat([{"role": "user", "content": _MARKER}], add_generation_prompt=False)
    if rendered.count(_MARKER) != 1:
        raise TextError("the chat template does not write a user turn's content once; distill:synth needs it")
    prefix, suffix = rendered.split(_MARKER)
    end = text.encode(suffix)[:1] if suffix.strip() else []
    stops = set(text.eos_ids) | set(end)
    if not stops:
        raise TextError("the chat template ends a user turn with nothing and the verifier has no eos_token_id; "
                        "distill:synth cannot tell where a synthesized turn ends")
    return text.encode(prefix), stops


def _kept(ids: list[int], stops: set[int], text: Text) -> str | None:
    """The turn's text when it ended within MAX_TOKENS, is long enough and holds no special token."""
    if not ids or ids[-1] not in stops or not MIN_TOKENS <= len(ids) - 1 <= MAX_TOKENS:
        return None
    body = ids[:-1]
    shown = text.decode(body)
    if text.tokenizer.decode(body, skip_special_tokens=True) != shown:
        return None
    return shown.strip() or None


def synthesize(verifier: Verifier, text: Text, count: int, seed: int, exclude: NearIndex | None = None,
               report: Callable[[str], None] = lambda line: None) -> list[str]:
    """`count` self-synthesized user turns (fewer when the rounds run out), in the order they were sampled;
    `report` gets a line per round."""
    prefix, stops = user_turn(text)
    generator = torch.Generator().manual_seed(seed)
    kept, excluded = NearIndex(), exclude or NearIndex()
    for n in range(1, ROUNDS_PER_BATCH * -(-count // BATCH) + 1):
        for ids in generate_batch(verifier, [prefix] * BATCH, MAX_TOKENS + 1, stops, TEMPERATURE, generator):
            turn = _kept(ids, stops, text)
            if turn is not None and kept.match(turn) is None and excluded.match(turn) is None:
                kept.add(turn)
            if len(kept) == count:
                break
        report(f"synth: {len(kept)}/{count} prompts kept of {n * BATCH} sampled")
        if len(kept) == count:
            break
    return kept.texts


def main(argv: list[str] | None = None) -> None:
    """`python -m specfmt.train.synth --verifier DIR --count N --seed S`: the prompts as JSON lines on stdout (how
    examples/prompts/chat-heldout.jsonl was made)."""
    import argparse
    import json
    import sys

    p = argparse.ArgumentParser(prog="python -m specfmt.train.synth", description=main.__doc__)
    p.add_argument("--verifier", required=True, help="a Hugging Face model directory with its chat template")
    p.add_argument("--count", type=int, required=True, help="prompts to keep")
    p.add_argument("--seed", type=int, default=0, help="the sampling seed")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16", help="as datagen's --gen-dtype")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    verifier = Verifier.from_pretrained(args.verifier, dtype=getattr(torch, args.dtype))
    report = lambda line: sys.stderr.write(line + "\n")  # noqa: E731
    for prompt in synthesize(verifier, Text.from_verifier(args.verifier), args.count, args.seed, report=report):
        sys.stdout.write(json.dumps({"prompt": prompt}) + "\n")


if __name__ == "__main__":
    main()
