"""specfmt: the reference implementation of the specfmt standard for speculative-decoding drafts.

Validation reads config.json and the safetensors headers only (torch is not imported for it).
"""

from importlib.metadata import PackageNotFoundError, version

from specfmt.findings import Finding, Report, ValidationError
from specfmt.validate import validate, validate_config

try:
    __version__ = version("specfmt")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Finding", "Report", "ValidationError", "validate", "validate_config", "save", "load"]


def save(config, tensors, path, **kwargs):
    """Write a strict checkpoint atomically. See specfmt.checkpoint.save."""
    from specfmt.checkpoint import save as _save

    return _save(config, tensors, path, **kwargs)


def load(path, **kwargs):
    """Read a checkpoint's config and tensors. See specfmt.checkpoint.load."""
    from specfmt.checkpoint import load as _load

    return _load(path, **kwargs)
