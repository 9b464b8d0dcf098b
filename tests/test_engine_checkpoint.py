"""Checkpoints that say what is wrong (minimask/engine/checkpoint.py, minimask.load): a
truncated file, a damaged one, a file that is not a checkpoint and one of a newer format
are each refused with one ValueError that names the file and the problem; through the CLI,
a message and a non-zero exit, never a traceback. The reference for each case is the
damage the test does by hand to a good checkpoint of the tiny model."""

import json
import os

import numpy as np
import pytest

import minimask
from minimask.cli import main
from minimask.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from minimask.models import MaskRCNN, MaskRCNNConfig

META = {"category_ids": [1, 2], "class_names": ["__background__", "a", "b"]}


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    minimask.manual_seed(0)
    path = str(tmp_path_factory.mktemp("checkpoint") / "checkpoint.npz")
    save_checkpoint(path, MaskRCNN(MaskRCNNConfig.tiny(2)), 5, META)
    return path


def _damaged_copy(good, tmp_path, damage):
    data = bytearray(open(good, "rb").read())
    path = str(tmp_path / "damaged.npz")
    with open(path, "wb") as file:
        file.write(damage(data))
    return path


def test_a_good_checkpoint_carries_its_format_and_loads(good_checkpoint):
    meta, parts = read_checkpoint(good_checkpoint)
    assert meta["format"] == CHECKPOINT_FORMAT == 1
    assert meta["step"] == 5 and parts["model"]
    model, _ = load_model(good_checkpoint)
    assert model.cfg == MaskRCNNConfig.tiny(2)


@pytest.mark.parametrize(
    "damage, problem",
    [
        pytest.param(lambda d: d[: len(d) // 2], "truncated", id="truncated to half"),
        pytest.param(lambda d: d[:-10], "truncated", id="last bytes cut"),
        pytest.param(lambda d: bytes(len(d)), "truncated", id="all zeros"),
        pytest.param(lambda d: b"not a checkpoint at all\n", "truncated", id="a text file"),
    ],
)
def test_a_truncated_or_foreign_file_names_the_file(good_checkpoint, tmp_path, damage, problem):
    path = _damaged_copy(good_checkpoint, tmp_path, damage)
    with pytest.raises(ValueError, match=problem) as error:
        read_checkpoint(path)
    assert path in str(error.value)


def test_a_flipped_byte_in_the_weights_fails_the_crc_check(good_checkpoint, tmp_path):
    """One byte in the middle of the file (inside a weight array: np.savez stores arrays
    uncompressed) is inverted: the zip's CRC-32 of that entry no longer matches."""

    def flip(data):
        data[len(data) // 2] ^= 0xFF
        return bytes(data)

    path = _damaged_copy(good_checkpoint, tmp_path, flip)
    with pytest.raises(ValueError, match="CRC-32") as error:
        read_checkpoint(path)
    assert path in str(error.value)


def test_an_npz_that_is_not_a_checkpoint(tmp_path):
    path = str(tmp_path / "weights.npz")
    minimask.save({"w": np.zeros(3)}, path)
    with pytest.raises(ValueError, match="not a minimask checkpoint .no 'meta' entry.") as error:
        read_checkpoint(path)
    assert path in str(error.value)


def _with_meta(good, path, **changes):
    state = minimask.load(good)
    meta = json.loads(bytes(state["meta"].numpy()).decode("utf-8"))
    meta.update(changes)
    state["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    minimask.save(state, path)
    return path


def test_a_newer_format_is_refused_with_the_versions(good_checkpoint, tmp_path):
    path = _with_meta(good_checkpoint, str(tmp_path / "newer.npz"), format=CHECKPOINT_FORMAT + 1)
    with pytest.raises(ValueError, match=r"format 2 is newer .*\(format 1\)") as error:
        read_checkpoint(path)
    assert path in str(error.value)


def test_weights_that_do_not_fit_their_config_are_refused(good_checkpoint, tmp_path):
    """The meta says the small preset, the weights are the tiny model's."""
    small = MaskRCNNConfig.small(2).to_dict()
    path = _with_meta(good_checkpoint, str(tmp_path / "mismatch.npz"), config=small)
    with pytest.raises(ValueError, match="does not match its own config") as error:
        load_model(path)
    assert path in str(error.value)


def test_the_cli_says_what_is_wrong_and_exits_non_zero(good_checkpoint, tmp_path, capsys):
    path = _damaged_copy(good_checkpoint, tmp_path, lambda d: d[: len(d) // 3])
    for command in (
        ["evaluate", "--checkpoint", path, "--images", str(tmp_path), "--ann", "none.json"],
        ["predict", "--checkpoint", path, "image.png", "--out", str(tmp_path / "out")],
    ):
        with pytest.raises(SystemExit) as error:
            main(command)
        message = str(error.value.code)
        assert message.startswith(f"minimask {command[0]}: ") and path in message
        assert "truncated" in message and "Traceback" not in message
    assert not os.path.exists(tmp_path / "out")
