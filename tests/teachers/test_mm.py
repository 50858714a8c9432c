"""Checkpoints that do not fit are refused with the keys named, never half-loaded."""

import pytest
import torch

from configs.schema import CONFIG_DIR, load_teacher_config
from frames.files import sha256_file
from teachers.mm import CheckpointMismatchError, build_mm_model, load_checkpoint_strict, load_mm_config


@pytest.fixture(scope="module")
def lifter_model_and_state(tiny_weights):
    cfg = load_teacher_config("tiny")
    model = build_mm_model("mmpose", load_mm_config(cfg.lifter.mm_config, {}, CONFIG_DIR))
    state = torch.load(tiny_weights / cfg.lifter.checkpoint, weights_only=False)["state_dict"]
    return model, state


def save(tmp_path, state):
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": state}, path)
    return path


def test_a_fitting_checkpoint_loads_every_weight_and_reports_its_digest(lifter_model_and_state, tmp_path):
    model, state = lifter_model_and_state
    path = save(tmp_path, state)
    assert load_checkpoint_strict(model, path) == sha256_file(path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_missing_and_unexpected_keys_are_named(lifter_model_and_state, tmp_path):
    model, state = lifter_model_and_state
    broken = dict(state)
    dropped = sorted(broken)[0]
    del broken[dropped]
    broken["backbone.not_a_layer.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as caught:
        load_checkpoint_strict(model, save(tmp_path, broken))
    assert caught.value.missing == [dropped] and caught.value.unexpected == ["backbone.not_a_layer.weight"]
    assert dropped in str(caught.value)


def test_shape_mismatch_is_named(lifter_model_and_state, tmp_path):
    model, state = lifter_model_and_state
    key = next(k for k, v in state.items() if v.ndim >= 2)
    broken = dict(state, **{key: torch.zeros(*[s + 1 for s in state[key].shape])})
    with pytest.raises(CheckpointMismatchError, match="size mismatch") as caught:
        load_checkpoint_strict(model, save(tmp_path, broken))
    assert key in str(caught.value)


def test_a_missing_file_is_named(lifter_model_and_state, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint_strict(lifter_model_and_state[0], tmp_path / "nope.pth")


@pytest.mark.parametrize("gpu", [False, True])
def test_pick_device_follows_the_preference_and_what_torch_sees(monkeypatch, gpu):
    """Decided by torch.cuda.is_available(), faked here both ways: the test holds with or without
    a GPU in the machine that runs it."""
    from teachers.mm import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cuda" if gpu else "cpu")
    if gpu:
        assert pick_device("cuda") == torch.device("cuda")
    else:
        with pytest.raises(RuntimeError, match="torch sees no GPU"):
            pick_device("cuda")
