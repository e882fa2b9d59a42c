"""One small source per `convert --from` format, built with the converter tests' own builders, and the arguments
that convert it: the --out safety and kill tests convert each of them."""

from __future__ import annotations

from pathlib import Path

import test_convert_eagle_research as eagle
import test_convert_medusa as medusa
import test_convert_mlp_speculator as mlp
import test_convert_mtp as mtp
import test_convert_zlab_dflash as zlab
from builders import write_variant, write_verifier
from eagle3_sources import SPECFORGE, source_tensors
from eagle3_sources import verifier_dir as eagle3_verifier_dir
from eagle3_sources import write_source as write_eagle3


def _verifier_args(verifier: Path, name: str) -> list[str]:
    return ["--verifier", str(verifier), "--verifier-name", name]


def _eagle_research(root: Path) -> tuple[Path, list[str]]:
    verifier = write_verifier(root / "verifier")
    src = eagle.write_research(root / "src", eagle.LLAMA3, eagle.research_tensors(eagle.LLAMA3, verifier), True)
    return src, _verifier_args(verifier, eagle.VERIFIER_NAME)


def _medusa(root: Path) -> tuple[Path, list[str]]:
    src = medusa.write_source(root / "src", medusa.V01, medusa.heads(4, 1), "medusa_lm_head.pt")
    return src, _verifier_args(write_verifier(root / "verifier"), medusa.VERIFIER_NAME)


def _mlp_speculator(root: Path) -> tuple[Path, list[str]]:
    src = mlp.write_source(root / "src", mlp.LLAMA3_8B, mlp.stages(mlp.LLAMA3_8B))
    return src, _verifier_args(write_verifier(root / "verifier"), mlp.VERIFIER_NAME)


def _eagle3_research(root: Path) -> tuple[Path, list[str]]:
    src = write_eagle3(root / "src", SPECFORGE, source_tensors(SPECFORGE, ["midlayer."], embed=False))
    return src, _verifier_args(eagle3_verifier_dir(root), "org/verifier")


def _zlab_dflash(root: Path) -> tuple[Path, list[str]]:
    verifier = write_verifier(root / "verifier", scale=5.0)
    return zlab.write_zlab(root / "src"), _verifier_args(verifier, "org/verifier")


def _mtp(root: Path) -> tuple[Path, list[str]]:
    family = next(iter(mtp.FAMILIES))
    verifiers = {family: mtp.write_hf_verifier(root / "verifier", mtp.FAMILIES[family][1])}
    return mtp.source_for(family, root, verifiers), _verifier_args(verifiers[family], "org/verifier")


def _speculators(root: Path) -> tuple[Path, list[str]]:
    src = write_variant("eagle3", root / "src")
    return src, ["--verifier", str(write_verifier(root / "verifier"))]


SOURCES = {"eagle-research": _eagle_research, "medusa": _medusa, "mlp-speculator": _mlp_speculator,
           "eagle3-research": _eagle3_research, "zlab-dflash": _zlab_dflash, "mtp": _mtp,
           "speculators": _speculators}


def source(fmt: str, root: Path) -> tuple[Path, list[str]]:
    """A source of format `fmt` under `root` (root/src, or root/source) and the convert arguments after it,
    --from included, --out not."""
    root.mkdir(parents=True, exist_ok=True)
    path, args = SOURCES[fmt](root)
    return path, ["--from", fmt, *args]
