"""The run index and the shard-aware stream (issue 33): the index written at commit, checked by verify and
rebuilt by `labels index`; every training item exactly once per epoch over ranks x workers; orders that
change with the epoch and repeat with the seed; items equal to the map-style dataset's."""

import numpy as np
import pytest
import torch

from orpose.label_store.dataset import PoseLabelDataset
from orpose.label_store.index import INDEX_COLUMNS, consolidate_index, load_index
from orpose.label_store.inspection import verify_index
from orpose.label_store.shard import FrameRecord, commit_shard
from orpose.label_store.stream import PoseLabelStream, deal_shards
from tests.cli import labels

SHARD_SIZES = (4, 1, 3, 4, 2, 4, 4, 3, 1, 4)  # uneven on purpose: 30 frames in 10 shards


@pytest.fixture(scope="module")
def many_shards(tmp_path_factory, records, provenance):
    """A run of 10 uneven shards made of the fixture's records under new ids (3 of each 4 labelled)."""
    run = tmp_path_factory.mktemp("stream") / "run"
    n = 0
    for shard, size in enumerate(SHARD_SIZES):
        batch = []
        for _ in range(size):
            original = records[n % len(records)]
            batch.append(
                FrameRecord(dict(original.frame, frame_id=f"{original.frame['frame_id']}#{n}"), original.persons)
            )
            n += 1
        commit_shard(run, shard, batch, provenance)
    return run


def labelled_ids(run) -> list[str]:
    index = load_index(run)
    return sorted(index.frame_id_at(p) for p in index.labelled())


def test_dealing_shards_known_answer():
    shards = np.arange(8)
    dealt = {(r, w): deal_shards(shards, 0, 0, r, 2, w, 2, shuffle=False).tolist() for r in (0, 1) for w in (0, 1)}
    assert dealt == {(0, 0): [0, 4], (0, 1): [2, 6], (1, 0): [1, 5], (1, 1): [3, 7]}
    shuffled = [deal_shards(shards, 5, 1, r, 2, w, 2, shuffle=True) for r in (0, 1) for w in (0, 1)]
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(8))


def test_commit_writes_the_index_and_verify_checks_it(many_shards, tmp_path):
    index = load_index(many_shards)
    assert len(index) == sum(SHARD_SIZES) and list(index.shards) == list(range(len(SHARD_SIZES)))
    assert (index.row[index.shard == 2] == [0, 1, 2]).all()
    assert verify_index(many_shards) == []
    consolidated = consolidate_index(many_shards)
    for name in INDEX_COLUMNS:
        np.testing.assert_array_equal(getattr(consolidated, name), getattr(index, name))

    # a part that disagrees with its shard is named by verify; `labels index --rebuild` repairs it
    import shutil

    run = tmp_path / "run"
    shutil.copytree(many_shards, run)
    part = run / "index" / "shard-00003.npz"
    with np.load(part) as data:
        broken = {k: data[k] for k in data.files}
    broken["persons"] = broken["persons"] + 1
    np.savez(part, **broken)
    problems = verify_index(run)
    assert len(problems) == 1 and "shard-00003.npz: persons differ from shard-00003.h5" in problems[0]
    result = labels("index", run, "--rebuild")
    assert result.returncode == 0, result.stderr
    assert "indexed 30 frames" in result.stdout and verify_index(run) == []


def test_a_run_without_an_index_gets_one(many_shards, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(many_shards, run)
    shutil.rmtree(run / "index")
    assert labelled_ids(run) == labelled_ids(many_shards)  # read from the shards themselves
    result = labels("index", run)
    assert result.returncode == 0 and (run / "index" / "index.npz").exists() and verify_index(run) == []


def read_epoch(run, epoch, world_size=2, workers=2, seed=0, buffer_size=4):
    """Frame ids each rank reads in one epoch, through real DataLoader workers."""
    per_rank = []
    for rank in range(world_size):
        stream = PoseLabelStream(run, seed=seed, buffer_size=buffer_size, rank=rank, world_size=world_size, factor=8)
        stream.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers)
        per_rank.append([item["frame_id"] for item in loader])
    return per_rank


def test_every_labelled_frame_comes_once_per_epoch_over_two_ranks_of_two_workers(many_shards):
    expected = labelled_ids(many_shards)
    assert len(expected) == 22  # the rejected fixture frame is no item
    first = read_epoch(many_shards, epoch=0)
    assert sorted(first[0] + first[1]) == expected and first[0] and first[1]
    again = read_epoch(many_shards, epoch=0)
    assert again == first  # same seed and epoch: the same order
    second = read_epoch(many_shards, epoch=1)
    assert sorted(second[0] + second[1]) == expected and second != first
    other_seed = read_epoch(many_shards, epoch=0, seed=1)
    assert other_seed != first


def test_stream_items_equal_the_map_style_items(many_shards):
    stream = PoseLabelStream(many_shards, factor="random", seed=3, buffer_size=8)
    stream.set_epoch(2)
    dataset = PoseLabelDataset(many_shards, factor="random", seed=3)
    dataset.set_epoch(2)
    by_id = {frame_id: i for i, frame_id in enumerate(dataset.frame_ids)}
    streamed = list(stream)
    assert len(streamed) == len(dataset) == 22
    factors = set()
    for item in streamed:
        other = dataset[by_id[item["frame_id"]]]
        assert item["factor"] == other["factor"]
        factors.add(round(item["factor"], 6))
        for key in ("image", "boxes", "keypoints", "hard_mask", "hard_valid"):
            assert torch.equal(item[key], other[key]), (item["frame_id"], key)
    assert len(factors) > 1  # the random schedule drew different factors
    dataset.set_epoch(3)
    assert [dataset[i]["factor"] for i in range(4)] != [
        PoseLabelDataset(many_shards, factor="random", seed=3)[i]["factor"] for i in range(4)
    ]


def test_map_style_dataset_pickles_and_reads_in_spawned_workers(many_shards):
    dataset = PoseLabelDataset(many_shards, modality="depth", factor=10, image_dtype="native")
    dataset[0]  # opens a shard in this process: the handle must not travel
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    items = list(loader)
    assert len(items) == len(dataset) and items[0]["image"].dtype == torch.uint8
    assert items[0]["image"].shape == (1, 48, 64)


def same_shard_rate(shards: np.ndarray) -> float:
    return float(np.mean(shards[1:] == shards[:-1]))


def test_positions_are_the_iteration_order_and_the_buffer_mixes_shards(many_shards):
    index = load_index(many_shards)
    stream = PoseLabelStream(many_shards, buffer_size=1, factor=8)
    stream.set_epoch(4)
    positions = stream.epoch_positions()
    assert [index.frame_id_at(p) for p in positions] == [item["frame_id"] for item in stream]
    # a buffer of one lets items out in the order they came in: whole shards one after the other
    shards = index.shard[positions]
    assert same_shard_rate(shards) == (len(shards) - len(stream.shards)) / (len(shards) - 1)
    mixed = PoseLabelStream(many_shards, buffer_size=16, factor=8)
    mixed.set_epoch(4)
    assert same_shard_rate(index.shard[mixed.epoch_positions()]) < same_shard_rate(shards)


def test_items_carry_3d_targets_and_the_hard_set_keeps_hard_persons(many_shards):
    from orpose.label_store.transforms import HorizontalFlip

    soft = PoseLabelDataset(many_shards, factor=8)
    hard = PoseLabelDataset(many_shards, factor=8, label_set="hard", min_score=0.5)
    for i in range(len(soft)):
        a, b = soft[i], hard[i]
        assert {"camera_id", "scores", "pose3d_soft", "pose3d_hard", "pose3d_camera"} <= set(a)
        assert a["pose3d_soft"].shape == (len(a["boxes"]), 17, 3)
        keep = a["hard_valid"] & (a["scores"] >= 0.5)
        assert torch.equal(b["keypoints"], a["keypoints"][keep]) and torch.equal(
            b["pose3d_hard"], a["pose3d_hard"][keep]
        )
    flipped = PoseLabelDataset(many_shards, factor=8, transform=HorizontalFlip())
    assert torch.equal(flipped[0]["keypoints"], HorizontalFlip()(soft[0])["keypoints"])
