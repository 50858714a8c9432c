"""Item transforms, collate and sampler (issue 34): known answers on hand-made items."""

import numpy as np
import pytest
import torch

from orpose.joints import COCO_KEYPOINTS, H36M_JOINTS
from orpose.label_store.transforms import HorizontalFlip, collate_poses, person_count_sampler


def make_item(persons: int, width: int = 10, height: int = 4) -> dict:
    keypoints = torch.zeros(persons, 17, 3)
    keypoints[:, COCO_KEYPOINTS.index("left_wrist")] = torch.tensor([2.0, 1.0, 0.9])
    keypoints[:, COCO_KEYPOINTS.index("right_wrist")] = torch.tensor([7.0, 1.0, 0.4])
    pose = torch.zeros(persons, 17, 3)
    pose[:, H36M_JOINTS.index("left_wrist")] = torch.tensor([-300.0, 10.0, 2000.0])
    coco_pose = torch.zeros(persons, 17, 3)
    coco_pose[:, COCO_KEYPOINTS.index("left_wrist")] = torch.tensor([-300.0, 10.0, 2000.0])
    hard = torch.zeros(persons, 17, dtype=torch.bool)
    hard[:, COCO_KEYPOINTS.index("left_wrist")] = True
    image = torch.zeros(3, height, width)
    image[:, :, 0] = 1.0  # the leftmost column is lit
    return {
        "image": image,
        "frame_id": f"f{persons}",
        "factor": 1.0,
        "boxes": torch.tensor([[1.0, 0.0, 4.0, 3.0]]).repeat(persons, 1),
        "keypoints": keypoints,
        "hard_mask": hard,
        "hard_valid": torch.ones(persons, dtype=torch.bool),
        "pose3d_soft": pose,
        "pose3d_camera": pose.clone(),
        "pose3d_room_camera": coco_pose,  # the multi-view 3D is COCO-17
        "pose3d_room_hard": hard.clone(),
    }


def test_a_horizontal_flip_mirrors_the_image_and_swaps_left_and_right():
    item = make_item(1)
    flipped = HorizontalFlip()(item)
    assert flipped["image"][0, 0, -1] == 1.0 and flipped["image"][0, 0, 0] == 0.0
    left, right = COCO_KEYPOINTS.index("left_wrist"), COCO_KEYPOINTS.index("right_wrist")
    # the right wrist is now where the left one was mirrored: pixel-index x -> w - 1 - x
    assert flipped["keypoints"][0, right].tolist() == [10 - 1 - 2.0, 1.0, float32(0.9)]
    assert flipped["keypoints"][0, left].tolist() == [10 - 1 - 7.0, 1.0, float32(0.4)]
    assert flipped["hard_mask"][0, right] and not flipped["hard_mask"][0, left]
    assert flipped["boxes"][0].tolist() == [10 - 4.0, 0.0, 10 - 1.0, 3.0]  # pixel edges: x -> w - x
    h_left, h_right = H36M_JOINTS.index("left_wrist"), H36M_JOINTS.index("right_wrist")
    assert flipped["pose3d_soft"][0, h_right].tolist() == [300.0, 10.0, 2000.0]
    assert flipped["pose3d_soft"][0, h_left].tolist() == [0.0, 0.0, 0.0]
    assert flipped["pose3d_room_camera"][0, right].tolist() == [300.0, 10.0, 2000.0]  # COCO's left-right pairs
    assert flipped["pose3d_room_camera"][0, left].tolist() == [0.0, 0.0, 0.0]
    assert flipped["pose3d_room_hard"][0, right] and not flipped["pose3d_room_hard"][0, left]
    twice = HorizontalFlip()(flipped)
    for key in ("image", "keypoints", "boxes", "hard_mask", "pose3d_soft", "pose3d_camera", "pose3d_room_camera"):
        assert torch.allclose(twice[key].float(), item[key].float()), key


def float32(value: float) -> float:
    """The value as a float32 keypoint holds it."""
    return float(np.float32(value))


def test_collate_pads_persons_and_masks_them():
    batch = collate_poses([make_item(2), make_item(0), make_item(3)])
    assert batch["image"].shape == (3, 3, 4, 10)
    assert batch["keypoints"].shape == (3, 3, 17, 3) and batch["pose3d_soft"].shape == (3, 3, 17, 3)
    assert batch["person_mask"].tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    assert batch["frame_id"] == ["f2", "f0", "f3"]
    assert (batch["keypoints"][1] == 0).all() and batch["keypoints"][0, 1, 9, 2] == np.float32(0.9)


class _Indexed:
    """The two attributes person_count_sampler reads from a PoseLabelDataset."""

    def __init__(self, persons):
        from types import SimpleNamespace

        self.source = SimpleNamespace(index=SimpleNamespace(persons=np.asarray(persons)))
        self.positions = np.arange(len(persons))


def test_the_person_count_sampler_draws_each_count_equally_often():
    persons = [1] * 90 + [2] * 9 + [5] * 1  # 90 % of the frames hold one person
    sampler = person_count_sampler(_Indexed(persons), num_samples=30000, seed=1)
    drawn = np.asarray(persons)[np.fromiter(iter(sampler), dtype=np.int64)]
    shares = [np.mean(drawn == k) for k in (1, 2, 5)]
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.02)


def test_packed_items_keep_their_values_in_one_storage():
    from orpose.label_store.packing import pack_item

    item = make_item(3)
    item["hard_valid"] = torch.tensor([True, False, True])
    item["depth_flag"] = torch.arange(51, dtype=torch.int8).reshape(3, 17)
    packed = pack_item(item)
    storages = {v.untyped_storage().data_ptr() for v in packed.values() if isinstance(v, torch.Tensor)}
    assert len(storages) == 1
    for key, value in item.items():
        if isinstance(value, torch.Tensor):
            assert packed[key].dtype == value.dtype and torch.equal(packed[key], value), key
        else:
            assert packed[key] == value
    batch = collate_poses([make_item(2), make_item(1)])
    assert len({v.untyped_storage().data_ptr() for v in batch.values() if isinstance(v, torch.Tensor)}) == 1


def test_packing_makes_strided_images_contiguous_and_stacks_a_batch_in_one_copy():
    from orpose.label_store.packing import pack_item

    hwc = torch.arange(2 * 3 * 4 * 3, dtype=torch.float32).reshape(2, 3, 4, 3)
    views = [image.permute(2, 0, 1) for image in hwc]  # channels first over channels last: strided
    packed = pack_item({"image": views[0], "frame_id": "a"})
    assert packed["image"].is_contiguous() and torch.equal(packed["image"], views[0])
    batch = pack_item({"images": views, "mask": torch.ones(2, 1, dtype=torch.bool)}, stacked=("images",))
    assert batch["images"].shape == (2, 3, 3, 4) and batch["images"].is_contiguous()
    assert torch.equal(batch["images"], torch.stack(views)) and batch["mask"].all()
    assert batch["images"].untyped_storage().data_ptr() == batch["mask"].untyped_storage().data_ptr()


def test_a_batch_of_images_of_different_sizes_is_refused_naming_the_sizes():
    small, large = make_item(1), make_item(1)
    large["image"] = torch.zeros(3, 8, 8)
    with pytest.raises(ValueError, match=r"image tensors differ in size .*one factor per batch"):
        collate_poses([small, large])


def test_a_batch_stacks_what_an_item_holds_once_and_pads_what_each_person_has():
    one, three = make_item(1), make_item(3)  # fewer persons than an intrinsics matrix has rows
    one["intrinsics"], three["intrinsics"] = torch.eye(3), 2 * torch.eye(3)
    batch = collate_poses([one, three])
    assert batch["intrinsics"].shape == (2, 3, 3) and torch.equal(batch["intrinsics"][1], 2 * torch.eye(3))
    assert batch["boxes"].shape == (2, 3, 4) and batch["person_mask"].tolist() == [[True, False, False], [True] * 3]
