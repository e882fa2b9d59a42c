"""Write the example checkpoints under examples/ (run by hand; the output is committed).

- eagle3-clean: a strict EAGLE-3 draft (llama layer, reduced vocabulary), random weights.
- eagle3-broken: the same draft as a careless converter would write it; `make demo` shows its findings.
- tiny-verifier: a random llama verifier (Hugging Face layout, 6 layers, hidden 32, vocab 128) with a
  word-level tokenizer.json (w0 ... w127), for `specfmt generate`.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conformance.generators.variants import config_of, tensors_for, write_verifier  # noqa: E402
from specfmt import save  # noqa: E402
from specfmt.safetensors_file import write_tensors  # noqa: E402


def main() -> None:
    examples = ROOT / "examples"
    config = config_of("eagle3")
    config["speculators_config"]["verifier"]["name_or_path"] = "example/tiny-llama-verifier"
    save(config, tensors_for(config, seed=1), examples / "eagle3-clean", overwrite=True)

    broken = examples / "eagle3-broken"
    shutil.rmtree(broken, ignore_errors=True)
    broken.mkdir()
    bad = json.loads(json.dumps(config))
    del bad["norm_before_residual"]                       # engines disagree on the default
    bad["eagle_aux_hidden_state_layer_ids"] = [5, 3, 1, 7]  # unsorted, 7 > N = 6, and 4 ids for a 3-wide fc
    bad["auto_map"] = {"": "config.Eagle3SpeculatorConfig"}
    (broken / "config.json").write_text(json.dumps(bad, indent=2, sort_keys=True) + "\n")
    tensors = tensors_for(config, seed=1)
    del tensors["d2t"]                                    # reduced vocabulary without its mapping
    tensors["verifier_lm_head.weight"] = torch.full((128, 32), float("nan"))  # training-only, NaN
    write_tensors(broken / "model.safetensors", tensors, {"format": "pt"})
    shutil.rmtree(examples / "tiny-verifier", ignore_errors=True)
    write_verifier(examples / "tiny-verifier", tokenizer=True)


if __name__ == "__main__":
    main()
