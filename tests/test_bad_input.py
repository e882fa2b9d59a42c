"""Bad input yields findings and exit code 1, never a traceback, and never runs code."""

import json
import pickle
import struct
import subprocess
import sys

import pytest

from builders import write_variant
from specfmt import validate
from specfmt.cli import main


def write_raw(path, header, data_len, declared_len=None, file_len=None):
    """A safetensors file with a hand-made header (bytes or object) and zero data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(raw) if declared_len is None else declared_len
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", length) + raw + b"\0" * data_len)
        if file_len is not None:
            f.truncate(file_len)


@pytest.fixture
def ckpt(tmp_path):
    """A clean strict eagle3 checkpoint to break."""
    return write_variant("eagle3", tmp_path / "ckpt")


def codes(path, profile="compat"):
    return validate(path, profile).codes()


def one_tensor_header(**entry):
    return {"fc.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], **entry}}


def test_a_missing_directory_is_a_finding_not_an_exception(tmp_path):
    assert codes(tmp_path / "nope") == {("io.not_found", "")}


def test_a_file_instead_of_a_directory_is_reported(tmp_path):
    (tmp_path / "f").write_text("x")
    assert codes(tmp_path / "f") == {("io.not_found", "")}


def test_non_json_config_is_reported(ckpt):
    (ckpt / "config.json").write_text("{not json")
    assert ("config.json", "") in codes(ckpt)


def test_non_utf8_config_is_reported(ckpt):
    (ckpt / "config.json").write_bytes(b'{"a": "\xff\xfe"}')
    assert ("config.encoding", "") in codes(ckpt)


def test_config_of_the_wrong_json_type_is_reported(ckpt):
    (ckpt / "config.json").write_text("[1, 2, 3]")
    assert ("config.type", "") in codes(ckpt)


def test_config_with_a_repeated_key_is_reported(ckpt):
    (ckpt / "config.json").write_text('{"dtype": "float32", "dtype": "float16"}')
    assert ("config.duplicate_key", "") in codes(ckpt)


DEEP = "[" * 100_000 + "]" * 100_000  # inside every size bound, far past any recursion limit


def test_deeply_nested_config_is_reported_not_a_recursion_crash(ckpt):
    (ckpt / "config.json").write_text(DEEP)
    assert ("config.json", "") in codes(ckpt)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("profile", ["compat", "strict"])
def test_a_config_number_written_as_a_non_json_literal_is_an_error(ckpt, literal, profile):
    config = (ckpt / "config.json").read_text()
    (ckpt / "config.json").write_text(config.replace('"rms_norm_eps": 1e-06', f'"rms_norm_eps": {literal}'))
    assert literal in (ckpt / "config.json").read_text()
    report = validate(ckpt, profile)
    assert not report.ok and ("config.json", "") in report.codes()


def test_a_deeply_nested_safetensors_header_is_reported_not_a_recursion_crash(ckpt):
    write_raw(ckpt / "model.safetensors", DEEP.encode(), 0)
    assert codes(ckpt) == {("header.json", "")}


def test_a_deeply_nested_shard_index_is_reported_not_a_recursion_crash(sharded):
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": ' + DEEP + "}")
    assert codes(sharded) == {("index.json", "")}


def test_the_cli_reports_a_deeply_nested_header_in_one_line_with_exit_1(ckpt):
    write_raw(ckpt / "model.safetensors", DEEP.encode(), 0)
    proc = subprocess.run([sys.executable, "-m", "specfmt.cli", "validate", str(ckpt)], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "header.json" in proc.stdout


def test_the_cli_prints_a_lone_surrogate_from_config_json_as_its_escape(ckpt):
    # Found by make fuzz: JSON text may escape a lone surrogate, which Python reads into a str that no UTF-8 stream
    # can carry, so printing the finding was a UnicodeEncodeError traceback.
    (ckpt / "config.json").write_text((ckpt / "config.json").read_text().replace('"float32"', '"\\ud800"'))
    assert ("config.enum", "/dtype") in codes(ckpt)
    proc = subprocess.run([sys.executable, "-m", "specfmt.cli", "validate", str(ckpt)], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert 'found "\\ud800" [config.enum]' in proc.stdout


def test_nested_layout_loops_share_one_iteration_bound(tmp_path):
    # Found by make fuzz: 3 medusa heads of 10^5 layers each stay under the 10^5 bound of one loop, and were
    # expanded into 6 * 10^5 expected tensors (13 s, 0.9 GB); 10^4 heads of 10^4 layers ran out of memory.
    path = write_variant("medusa", tmp_path / "medusa")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "medusa_num_layers": 100_000}))
    report = validate(path)
    assert report.codes() == {("layout.expression", "")}
    assert "loop l: 100000 iterations exceed 33333" in report.findings[0].message


def test_the_writer_refuses_a_config_holding_nan(tmp_path):
    from specfmt.checkpoint import dump_config

    with pytest.raises(ValueError):
        dump_config({"rms_norm_eps": float("nan")})


@pytest.mark.parametrize("dtype", [["F32"], {"F32": 1}, 4, None])
def test_a_header_dtype_that_is_not_a_string_is_a_finding_not_a_type_error(ckpt, dtype):
    write_raw(ckpt / "model.safetensors", one_tensor_header(dtype=dtype), 8)
    assert ("header.dtype", "/fc.weight/dtype") in codes(ckpt)


def test_oversized_config_is_refused_before_reading(ckpt):
    with open(ckpt / "config.json", "wb") as f:
        f.truncate(17 * 1024 * 1024)
    assert ("config.too_large", "") in codes(ckpt)


def test_header_length_larger_than_the_file_is_reported(ckpt):
    write_raw(ckpt / "model.safetensors", one_tensor_header(), 8, declared_len=10_000)
    assert ("header.length", "") in codes(ckpt)


def test_header_length_over_the_bound_is_refused_without_reading(ckpt):
    write_raw(ckpt / "model.safetensors", one_tensor_header(), 8, declared_len=1 << 40)
    report = validate(ckpt)
    assert ("header.length", "") in report.codes()
    assert "over the bound" in next(f.message for f in report.findings if f.code == "header.length")


def test_overlapping_offsets_are_reported(ckpt):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    write_raw(ckpt / "model.safetensors", header, 12)
    assert ("header.offsets", "/b/data_offsets") in codes(ckpt)


def test_gapped_offsets_are_reported(ckpt):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}
    write_raw(ckpt / "model.safetensors", header, 20)
    assert ("header.offsets", "/b/data_offsets") in codes(ckpt)


def test_a_truncated_file_is_reported(ckpt):
    write_raw(ckpt / "model.safetensors", one_tensor_header(), 3)
    assert ("header.truncated", "") in codes(ckpt)


def test_a_file_shorter_than_eight_bytes_is_reported(ckpt):
    (ckpt / "model.safetensors").write_bytes(b"\x01\x02")
    assert ("header.truncated", "") in codes(ckpt)


def test_an_unknown_dtype_is_reported(ckpt):
    write_raw(ckpt / "model.safetensors", one_tensor_header(dtype="F7"), 8)
    assert ("header.dtype", "/fc.weight/dtype") in codes(ckpt)


def test_a_byte_range_that_disagrees_with_the_shape_is_reported(ckpt):
    write_raw(ckpt / "model.safetensors", one_tensor_header(shape=[3]), 8)
    assert ("header.size", "/fc.weight/data_offsets") in codes(ckpt)


def test_a_duplicate_tensor_is_reported(ckpt):
    raw = (b'{"fc.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},'
           b' "fc.weight": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}')
    write_raw(ckpt / "model.safetensors", raw, 16)
    assert ("header.duplicate", "/fc.weight") in codes(ckpt)


def test_a_header_that_is_not_an_object_is_reported(ckpt):
    write_raw(ckpt / "model.safetensors", b"[1, 2]", 0)
    assert ("header.json", "") in codes(ckpt)


def test_a_malformed_entry_is_reported(ckpt):
    write_raw(ckpt / "model.safetensors", {"fc.weight": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}, 0)
    assert ("header.entry", "/fc.weight/shape") in codes(ckpt)


@pytest.fixture
def sharded(tmp_path):
    return write_variant("eagle3", tmp_path / "sharded", max_shard_bytes=20_000)


def test_a_sharded_checkpoint_validates_clean(sharded):
    assert (sharded / "model.safetensors.index.json").exists()
    assert len(list(sharded.glob("model-*-of-*.safetensors"))) > 1
    assert codes(sharded, "strict") == set()


def test_a_shard_index_that_is_not_json_is_reported(sharded):
    (sharded / "model.safetensors.index.json").write_text("{")
    assert ("index.json", "") in codes(sharded)


def test_a_missing_shard_is_reported(sharded):
    shard = sorted(sharded.glob("model-*.safetensors"))[0]
    shard.unlink()
    assert ("index.missing_shard", "/weight_map") in codes(sharded)


def test_an_index_that_misplaces_a_tensor_is_reported(sharded):
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    name = next(n for n, s in index["weight_map"].items() if s == shards[0])
    index["weight_map"][name] = shards[1]
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    assert ("index.mismatch", f"/weight_map/{name}") in codes(sharded)


def test_an_index_naming_a_shard_outside_the_directory_is_refused(sharded):
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    index["weight_map"]["fc.weight"] = "../../etc/passwd.safetensors"
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    assert ("index.path", "/weight_map") in codes(sharded)


class Exploit:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_weights_are_refused_and_never_unpickled(ckpt, tmp_path):
    marker = tmp_path / "pwned"
    (ckpt / "model.safetensors").unlink()
    (ckpt / "pytorch_model.bin").write_bytes(pickle.dumps(Exploit(str(marker))))
    assert codes(ckpt) == {("weights.pickle", "")}
    assert not marker.exists()


def test_a_checkpoint_without_weights_is_reported(ckpt):
    (ckpt / "model.safetensors").unlink()
    assert codes(ckpt) == {("weights.missing", "")}


@pytest.mark.parametrize("breakage", ["bad-json", "bad-header"])
def test_the_cli_exits_1_with_findings_and_no_traceback(tmp_path, breakage):
    # A missing directory is a usage error, exit 2: test_cli_errors.py
    path = write_variant("eagle3", tmp_path / "ckpt")
    if breakage == "bad-json":
        (path / "config.json").write_bytes(b"\xff")
    else:
        write_raw(path / "model.safetensors", b"{{{{", 0)
    proc = subprocess.run([sys.executable, "-m", "specfmt.cli", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "error:" in proc.stdout


def test_the_cli_exits_2_on_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--profile", "lenient", "x"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("text", ["null", '"config"'])
def test_a_config_json_that_is_null_or_a_string_is_a_type_finding_not_a_clean_checkpoint(ckpt, text):
    (ckpt / "config.json").write_text(text)
    assert ("config.type", "") in codes(ckpt)


def test_a_shard_index_that_is_null_is_reported(sharded):
    (sharded / "model.safetensors.index.json").write_text("null")
    assert ("index.json", "/weight_map") in codes(sharded)


@pytest.mark.parametrize("relative", ["../x.safetensors", "/etc/x.safetensors", "a/../../x", "", ".", 5, None,
                                      "a\\..\\x"])
def test_the_shared_reader_keeps_a_named_path_inside_its_root(tmp_path, relative):
    from specfmt import files

    with pytest.raises(files.FileRefused) as refused:
        files.resolve_inside(tmp_path, relative, "index.json", "/shards/0")
    assert (refused.value.finding.code, refused.value.finding.pointer) == ("index.path", "/shards/0")


def test_the_shared_reader_resolves_a_relative_path_under_its_root(tmp_path):
    from specfmt import files

    assert files.resolve_inside(tmp_path, "shards/0.safetensors") == tmp_path / "shards" / "0.safetensors"


def test_the_shared_reader_refuses_a_fifo_a_device_a_directory_and_a_symlink_loop_without_blocking(tmp_path):
    import os

    from specfmt import files

    os.mkfifo(tmp_path / "fifo")
    os.symlink("loop", tmp_path / "loop")
    for path in (tmp_path / "fifo", "/dev/zero", tmp_path, tmp_path / "loop"):
        with pytest.raises(files.FileRefused) as refused:
            files.open_regular(path)
        assert refused.value.finding.code == "io.not_found" and str(path) in str(refused.value)


def test_the_shared_reader_reads_what_safetensors_reads(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from specfmt import files

    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5), "c": torch.randn(2).bfloat16(), "e": torch.zeros(0, 3),
               "f": torch.tensor([True, False])}
    save_file(tensors, str(tmp_path / "m.safetensors"))
    read, theirs = files.read_safetensors(tmp_path / "m.safetensors"), load_file(str(tmp_path / "m.safetensors"))
    assert read.keys() == theirs.keys() and all(torch.equal(read[k], theirs[k]) for k in theirs)


def test_the_shared_reader_refuses_a_header_that_claims_more_data_than_the_file_holds(tmp_path):
    from specfmt import files

    claim = {"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}
    write_raw(tmp_path / "m.safetensors", claim, 16)
    with pytest.raises(files.FileRefused) as refused:
        files.read_safetensors(tmp_path / "m.safetensors")
    assert refused.value.finding.code == "header.truncated"


@pytest.mark.parametrize(("config", "tensors", "code", "ptr"), [
    ({"num_hidden_layers": 10**9}, None, "config.range", "/num_hidden_layers"),
    ({"num_hidden_layers": 7}, 6, "config.range", "/num_hidden_layers"),
    ({"text_config": {"hidden_size": 10**12}}, None, "config.range", "/text_config/hidden_size"),
    ({"transformer_layer_config": {"num_attention_heads": 0}}, None, "config.range",
     "/transformer_layer_config/num_attention_heads"),
    ({"hidden_size": "32"}, None, "config.type", "/hidden_size"),
    ({"hidden_size": float("inf")}, None, "config.type", "/hidden_size"),
    ({"n_predict": True}, None, "config.type", "/n_predict"),
    ({"rms_norm_eps": float("nan")}, None, "config.type", "/rms_norm_eps"),
])
def test_a_reader_refuses_a_size_it_would_compute_with_before_using_it(config, tensors, code, ptr):
    from specfmt.reader_facts import reader_facts

    assert [(f.code, f.pointer) for f in reader_facts(config, "config.json", tensors, 10_000)] == [(code, ptr)]


def test_a_research_draft_config_may_carry_its_verifiers_layer_count_and_tied_stages_may_share_tensors():
    from specfmt.reader_facts import reader_facts

    config = {"num_hidden_layers": 32, "n_predict": 8, "inner_dim": 0, "hidden_size": 32, "head_dim": None}
    assert reader_facts(config, "config.json", elements=10_000) == []
