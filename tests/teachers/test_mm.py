"""Checkpoints that do not fit are refused with the keys named, never half-loaded; a model goes to
the GPU its process was given (Ray's ids and CUDA_VISIBLE_DEVICES), never a hard-coded cuda:0."""

import pytest
import torch

from orpose.configs.schema import CONFIG_DIR, load_teacher_config
from orpose.frames.files import sha256_file
from orpose.teachers.mm import (
    CheckpointMismatchError,
    build_mm_model,
    cuda_device,
    load_checkpoint_strict,
    load_mm_config,
    worker_gpu_index,
)


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
    from orpose.teachers.mm import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == (torch.device("cuda", 0) if gpu else torch.device("cpu"))
    if gpu:  # outside Ray: the first visible GPU, by index (cuda_device)
        assert pick_device("cuda") == torch.device("cuda", 0)
    else:
        with pytest.raises(RuntimeError, match="torch sees no GPU"):
            pick_device("cuda")


@pytest.mark.parametrize(
    "assigned, visible, index",
    [
        ([], None, 0),  # outside Ray: the first visible GPU
        ([], "2,3", 0),
        (["1"], "1", 0),  # Ray set CUDA_VISIBLE_DEVICES to the actor's own GPU: torch calls it cuda:0
        ([3], "2,3", 1),  # ids listed by the user, Ray told not to set it: the position in the list
        (["1"], None, 1),  # every GPU visible: the id itself
        (["1"], " 0, 1 ", 1),
    ],
)
def test_the_worker_gpu_index_follows_ray_ids_and_cuda_visible_devices(assigned, visible, index):
    assert worker_gpu_index(assigned, visible) == index


def test_a_gpu_hidden_from_the_worker_is_named():
    with pytest.raises(RuntimeError, match=r"Ray assigned GPU 5 .*CUDA_VISIBLE_DEVICES='2,3'"):
        worker_gpu_index(["5"], "2,3")


def test_cuda_device_reads_this_process_environment(monkeypatch):
    """Outside a Ray worker (no ids assigned) the models go to cuda:0, whatever CUDA_VISIBLE_DEVICES lists."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert cuda_device() == torch.device("cuda", 0)
