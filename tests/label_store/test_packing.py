"""Items as one buffer (label_store/packing.py): values kept, one storage, and one tensor on the wire."""

import pickle
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest
import torch

from orpose.label_store.packing import PackedItem, pack, pack_item


def _values():
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    return {
        "image": hwc.transpose(2, 0, 1),  # channels first over channels last: strided
        "frame_id": "day1/cam1/000001",
        "factor": 2.5,
        "keypoints": rng.normal(size=(3, 17, 3)),  # float64, cast on the way in
        "hard_mask": rng.random((3, 17)) > 0.5,
        "depth_flag": rng.integers(0, 4, (3, 17)).astype(np.int8),
        "empty": np.zeros((0, 17, 3), np.float32),
    }


def _tensor_storages(item) -> set:
    return {v.untyped_storage().data_ptr() for v in item.values() if isinstance(v, torch.Tensor)}


def test_pack_keeps_values_casts_where_asked_and_uses_one_storage():
    values = _values()
    item = pack(values, {"keypoints": np.float32})
    assert list(item) == list(values)  # the key order is kept
    assert len(_tensor_storages(item)) == 1
    assert item["image"].is_contiguous() and item["image"].dtype == torch.uint8
    np.testing.assert_array_equal(item["image"].numpy(), values["image"])
    assert item["keypoints"].dtype == torch.float32
    np.testing.assert_array_equal(item["keypoints"].numpy(), values["keypoints"].astype(np.float32))
    assert item["hard_mask"].dtype == torch.bool and item["depth_flag"].dtype == torch.int8
    assert item["empty"].shape == (0, 17, 3)
    assert item["frame_id"] == values["frame_id"] and item["factor"] == 2.5
    for value in item.values():
        if isinstance(value, torch.Tensor) and value.numel():
            assert value.data_ptr() % 16 == 0


def test_a_packed_item_pickles_as_one_buffer_and_comes_back_equal():
    item = pack(_values())
    reduced = item.__reduce__()
    tensors = [a for a in reduced[1] if isinstance(a, torch.Tensor)]
    assert len(tensors) == 1 and tensors[0] is item._buffer  # the buffer, not one tensor per key
    back = pickle.loads(pickle.dumps(item))
    assert isinstance(back, PackedItem) and back.intact() and list(back) == list(item)
    for key, value in item.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(back[key], value), key
        else:
            assert back[key] == value
    assert len(_tensor_storages(back)) == 1


def test_through_shared_memory_the_training_process_gets_views_of_one_shared_tensor():
    torch.multiprocessing.reductions.init_reductions()
    item = pack(_values())
    back = pickle.loads(ForkingPickler.dumps(item))
    assert back._buffer.is_shared() and len(_tensor_storages(back)) == 1
    assert torch.equal(back["keypoints"], item["keypoints"])


def test_an_item_whose_tensor_was_replaced_pickles_the_new_tensor():
    item = pack(_values())
    item["keypoints"] = torch.zeros(1, 17, 3)
    assert not item.intact()
    back = pickle.loads(pickle.dumps(item))
    assert type(back) is dict and torch.equal(back["keypoints"], torch.zeros(1, 17, 3))
    repacked = pack_item(item)
    assert repacked.intact() and torch.equal(repacked["keypoints"], torch.zeros(1, 17, 3))


def test_pack_item_returns_an_intact_item_as_it_is_and_copies_anything_else():
    item = pack(_values())
    assert pack_item(item) is item
    plain = dict(item)  # what a transform returns: dict(item, ...)
    repacked = pack_item(plain)
    assert repacked is not item and len(_tensor_storages(repacked)) == 1
    assert repacked["image"].data_ptr() != item["image"].data_ptr()


def test_the_dataloaders_conversion_keeps_an_item_one_buffer():
    from torch.utils.data._utils.collate import default_convert  # what batch_size=None applies in a worker

    item = pack(_values())
    converted = default_convert(item)
    assert isinstance(converted, PackedItem) and converted.intact()
    tensors = [a for a in converted.__reduce__()[1] if isinstance(a, torch.Tensor)]
    assert len(tensors) == 1 and tensors[0] is item._buffer


@pytest.mark.parametrize("workers", [0, 2])
def test_items_from_dataloader_workers_equal_the_items_made_in_process(workers):
    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            values = _values()
            values["keypoints"] = values["keypoints"] + i
            return pack(values, {"keypoints": np.float32})

    made = [Items()[i] for i in range(4)]
    got = list(torch.utils.data.DataLoader(Items(), batch_size=None, num_workers=workers))
    for a, b in zip(made, got):
        assert isinstance(b, PackedItem) and b.intact() and len(_tensor_storages(b)) == 1
        assert list(a) == list(b)
        for key, value in a.items():
            assert torch.equal(b[key], value) if isinstance(value, torch.Tensor) else b[key] == value
