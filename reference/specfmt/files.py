"""The one reader of the files a command did not write: a checkpoint's config, index and weights, a verifier's,
a converter's source, a training cache's shards. Every command that reads such a file reads it here, with the
bounds and checks `validate` applies:

- `resolve_inside(root, relative)`: a path a file names (an index's shard, a cache's shard) stays under `root`:
  no absolute path, no `..`, no empty name (`index.path`).
- `open_regular(path)`: opened without blocking, then refused unless it is a regular file (a FIFO would hang the
  reader, /dev/zero would never end); the check is made on the open descriptor (fstat), so the file cannot be
  swapped between the check and the read. A symlink is followed (Hugging Face cache snapshots are symlinks), a
  symlink loop is refused.
- `read_bytes(path, max_bytes)`: the whole of a regular file, refused past its bound before reading.
- `read_safetensors(path)`: tensors from a file whose header the bounded parser (safetensors_header) accepts in
  full: a truncated file or a header that lies is refused before any data is read.
- `checkpoint_tensors(root)`: the tensors of a directory (model.safetensors, or its index and shards).

Each refusal is a FileRefused: an OSError carrying one Finding (code, file, pointer, message), printed on one
line. Spec: spec/layout.md#SFT-5 (paths), spec/layout.md#SFT-4 (headers), spec/index.md#GEN-7 (bounds)
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from specfmt.findings import Finding, finding, mismatch, pointer, under

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
SHARD_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.safetensors$")
KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


class FileRefused(OSError):
    """A file a command will not read, with the one finding that says why: `file#pointer: message [code]`.
    A refusal is reported under the strict profile."""

    def __init__(self, found: Finding):
        self.finding = under([found], "strict")[0]
        super().__init__(f"{found.file}#{found.pointer}: {found.message} [{found.code}]")

    def __str__(self) -> str:
        return self.args[0]


def refuse(code: str, file: str | os.PathLike, ptr: str, message: str, found: Any = None) -> FileRefused:
    """The FileRefused of one error finding."""
    return FileRefused(finding(code, str(file), ptr, message, found=found))


def json_type(value: object) -> str:
    """The JSON type of a parsed value, as messages name it."""
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def not_object(file: str | os.PathLike, ptr: str, value: object) -> FileRefused:
    """The refusal of a document (or member) that must be a JSON object and is not (`config.type`)."""
    return refuse("config.type", file, ptr, mismatch("not an object", "object", json_type(value)), json_type(value))


def inside(relative: object) -> bool:
    """Whether `relative` is a relative path that names something under its root: a non-empty string, not
    absolute, with no `..` part, no backslash and no NUL."""
    if not isinstance(relative, str) or not relative or "\\" in relative or "\0" in relative:
        return False
    path = PurePosixPath(relative)
    return not path.is_absolute() and ".." not in path.parts and relative.strip("./") != ""


def resolve_inside(root: str | os.PathLike, relative: object, file: str | os.PathLike = "", ptr: str = "") -> Path:
    """`root / relative` when `relative` stays under `root` (inside); FileRefused `index.path` naming `file#ptr`,
    the document and pointer that named it, otherwise. Symlinks are not resolved: a Hugging Face snapshot's files
    are links into its blob store."""
    if not inside(relative):
        raise refuse("index.path", file or root, ptr, mismatch("path", f"a relative path inside {root}", relative),
                     relative)
    return Path(root) / str(relative)


def shard_name_ok(shard: object) -> bool:
    """Whether an index's shard is a plain *.safetensors file name in the checkpoint directory (SFT-5)."""
    return isinstance(shard, str) and bool(SHARD_NAME.match(shard)) and not shard.startswith("..")


def shard_path(root: str | os.PathLike, shard: object, file: str | os.PathLike = INDEX, ptr: str = "/weight_map"
               ) -> Path:
    """A shard an index names: a plain *.safetensors file name in the checkpoint directory, as validate requires
    (index.path); the path under `root`, or FileRefused."""
    if not shard_name_ok(shard):
        raise refuse("index.path", file, ptr, mismatch("shard name", "a file name in the checkpoint directory",
                                                       shard), shard)
    return Path(root) / shard


def open_regular(path: str | os.PathLike, file: str | os.PathLike | None = None) -> BinaryIO:
    """`path` open for binary reading, only when it is a regular file (checked on the descriptor, after opening
    without blocking); FileRefused naming `file` (default: the path) otherwise."""
    name = str(file if file is not None else path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        what = "a symlink loop" if e.strerror and "symbolic links" in e.strerror else e.strerror
        raise refuse("io.not_found", name, "", f"cannot open the file: {what}") from None
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:
        os.close(fd)
        raise refuse("io.not_found", name, "", mismatch("not a regular file", "a regular file",
                                                         KINDS.get(kind, "a special file")))
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return os.fdopen(fd, "rb")


def read_bytes(path: str | os.PathLike, max_bytes: int, file: str | os.PathLike | None = None) -> bytes:
    """The content of the regular file at `path`, refused (`config.too_large`) when longer than `max_bytes`."""
    with open_regular(path, file) as f:
        raw, size = f.read(max_bytes + 1), os.fstat(f.fileno()).st_size  # never more than the bound is read
    if len(raw) > max_bytes:
        raise refuse("config.too_large", file if file is not None else path, "",
                     mismatch("file too large", f"<= {max_bytes} bytes", f"{max(size, len(raw))} bytes"))
    return raw


def read_json(path: str | os.PathLike, file: str | os.PathLike | None = None) -> Any:
    """A JSON document (config.json, an index) through the strict reader of specfmt.json_text, bounded by the
    schema's config_max_bytes; FileRefused (`config.json`, `config.too_large`, ...) naming `file`."""
    from specfmt import json_text
    from specfmt.schemas import SAFETENSORS

    name = str(file if file is not None else path)
    raw = read_bytes(path, SAFETENSORS["config_max_bytes"], name)
    try:
        return json_text.parse(raw, name)
    except json_text.JsonProblem as e:
        code = "index.json" if name.endswith(".index.json") else f"config.{e.kind}"  # as validate reports them
        raise refuse(code, name, "", str(e)) from None


def index_shards(root: str | os.PathLike, index: Any, file: str | os.PathLike = INDEX) -> dict[str, Path]:
    """Tensor name -> shard path of an index document: refused unless it is an object whose weight_map maps names
    to shard file names inside `root`."""
    if not isinstance(index, dict):
        raise refuse("index.json", file, "", mismatch("index not an object", "object", json_type(index)))
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict):
        raise refuse("index.json", file, "/weight_map", mismatch("weight_map", "an object of tensor name -> shard "
                                                                 "file", json_type(weight_map)))
    return {name: shard_path(root, shard, file, pointer("weight_map", name)) for name, shard in weight_map.items()}


def read_safetensors(path: str | os.PathLike, file: str | os.PathLike | None = None, names=None,
                     device: str = "cpu") -> dict[str, Any]:
    """The tensors of a safetensors file (those in `names` when given) as torch tensors on `device`. The header is
    parsed by the bounded parser first; any error it finds (a truncated file, a header that lies about sizes or
    offsets) is refused as its first finding."""
    name = str(file if file is not None else Path(path).name)
    with open_regular(path, name) as f:
        return {t.name: _tensor(f, t, device) for t in _checked_header(f, name) if names is None or t.name in names}


def stored_names(path: str | os.PathLike, file: str | os.PathLike | None = None) -> list[str]:
    """The tensor names of a safetensors file, from its header alone, checked as read_safetensors checks it."""
    name = str(file if file is not None else Path(path).name)
    with open_regular(path, name) as f:
        return [t.name for t in _checked_header(f, name)]


def _checked_header(f: BinaryIO, name: str) -> list:
    from specfmt.safetensors_header import read_open_header

    tensors, findings, _ = read_open_header(f, os.fstat(f.fileno()).st_size, name)
    errors = [x for x in under(findings, "strict") if x.severity == "error"]
    if tensors is None or errors:
        raise FileRefused(errors[0])
    return tensors


TORCH_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
               "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
               "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool"}


def _tensor(f: BinaryIO, t, device: str):
    import torch

    dtype = getattr(torch, TORCH_NAMES[t.dtype])
    if t.end == t.start:
        return torch.empty(t.shape, dtype=dtype, device=device)
    f.seek(t.start)
    data = bytearray(t.end - t.start)
    if f.readinto(data) != len(data):  # the file shrank after its header was checked
        raise refuse("header.truncated", f.name, "", f"the file ends inside tensor {t.name}")
    return torch.frombuffer(data, dtype=dtype).reshape(t.shape).to(device)  # [bytes] -> shape


def checkpoint_tensors(root: str | os.PathLike, device: str = "cpu") -> dict[str, Any]:
    """Every tensor of a checkpoint directory: its index's shards (each inside the directory), else
    model.safetensors; {} when it has neither."""
    root = Path(root)
    if (root / INDEX).exists() or (root / INDEX).is_symlink():
        files = sorted(set(index_shards(root, read_json(root / INDEX, INDEX)).values()))
    else:
        files = [root / SINGLE] if os.path.lexists(root / SINGLE) else []
    tensors: dict[str, Any] = {}
    for path in files:
        tensors.update(read_safetensors(path, path.name, device=device))
    return tensors
