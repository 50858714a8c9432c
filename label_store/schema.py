"""The HDF5 shard schema, version 2: one declaration used by the writer, the verifier, the readers and the docs.

A shard holds F frames and the P persons found in them:

    /                attrs: format, version, shard_index, num_frames, num_persons
    /frames/<field>  one row per frame (FRAME_FIELDS), plus person_offset with F + 1 rows
    /persons/<field> one row per person (PERSON_FIELDS); frame i owns rows
                     person_offset[i] : person_offset[i + 1]
    /provenance      attrs: the resolved config (JSON) and its hash, checkpoint sha256s, code and
                     package versions, thresholds, TTA settings, creation time

Every dataset carries a `sha256` attribute of its contents, checked by `verify_shard`. Version 2 added the
multi-view fields (`Field.since`: the frame's `instant` and the persons' `pose3d_room*`, `fusion_group`); a
version-1 shard is still read, its missing fields filled with their `fill` value (`fields_of`, `filled`).
docs/label_format.md is the user-facing description of the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Field",
    "FRAME_FIELDS",
    "PERSON_FIELDS",
    "SHARD_FORMAT",
    "SHARD_VERSION",
    "STATUS_LABELLED",
    "STATUS_REJECTED",
    "PROVENANCE_KEYS",
    "STR",
    "DEPTH_VALID",
    "DEPTH_HOLE",
    "DEPTH_OUTSIDE",
    "DEPTH_NONE",
    "READABLE_VERSIONS",
    "fields_of",
    "filled",
    "FUSION_PERSON_FIELDS",
]

SHARD_FORMAT = "or-pose-labels/shard"
SHARD_VERSION = 2
READABLE_VERSIONS = (1, 2)  # shards of these versions verify and read (older ones lack the fields added since)
STATUS_LABELLED, STATUS_REJECTED = 0, 1  # /frames/status
# /persons/depth_flag, per keypoint: the depth reading under it is valid, a hole (no reading within
# the search radius), outside the depth camera's view, or the frame has no depth.
DEPTH_VALID, DEPTH_HOLE, DEPTH_OUTSIDE, DEPTH_NONE = 0, 1, 2, 3
STR = "str"  # variable-length UTF-8 string


@dataclass(frozen=True)
class Field:
    name: str
    dtype: object  # numpy dtype, or STR
    shape: tuple[int, ...]  # per-row shape
    doc: str
    since: int = 1  # the shard version that added the field
    fill: object = 0  # the value of a row that does not have it (a shard older than `since`, a frame not fused)


def fields_of(fields: tuple[Field, ...], version: int) -> tuple[Field, ...]:
    """The fields a shard of `version` holds."""
    return tuple(f for f in fields if f.since <= version)


def filled(f: Field, rows: int) -> np.ndarray:
    """`rows` rows of field `f` holding its `fill` value."""
    if f.dtype is STR:
        return np.array([f.fill] * rows, dtype=object)
    return np.full((rows, *f.shape), f.fill, dtype=f.dtype)


FRAME_FIELDS = (
    Field("frame_id", STR, (), "stable frame id from the frame source"),
    Field("camera_id", STR, (), "camera id (key of the source's calibration)"),
    Field("color_path", STR, (), "absolute path of the color image"),
    Field("depth_path", STR, (), "absolute path of the depth image, '' for color-only frames"),
    Field("color_size", np.int32, (2,), "color (width, height) in pixels"),
    Field("depth_size", np.int32, (2,), "depth (width, height), (0, 0) without depth"),
    Field("depth_unit_mm", np.float32, (), "millimetres per depth count (0 without depth)"),
    Field("timestamp", np.float64, (), "seconds; NaN when the source does not know"),
    Field("status", np.int8, (), "0 labelled, 1 rejected"),
    Field(
        "reject_reason",
        STR,
        (),
        "'' when labelled; else the reason tag: missing_file, not_a_regular_file, file_too_large, empty_file, "
        "corrupt_image, color_not_8bit_3ch, depth_not_16bit_1ch, size_mismatch, missing_depth_pair, stage_error "
        '(docs/frame_sources.md, "Bad frames")',
    ),
    Field("reject_detail", STR, (), "the full error message of a rejected frame"),
    Field(
        "instant",
        np.int64,
        (),
        "the moment the frame belongs to, numbered over the run (frames of several cameras at one time share it); "
        "-1 when the run did not group frames (fusion off)",
        since=2,
        fill=-1,
    ),
)

PERSON_FIELDS = (
    Field("frame_index", np.int32, (), "row of the person's frame in /frames"),
    Field("box", np.float32, (4,), "person box x1, y1, x2, y2, color pixels (pixel-edge coordinates)"),
    Field("score", np.float32, (), "detector score after merging the TTA views"),
    Field("mask_rle", STR, (), "instance mask on the color grid, COCO RLE counts (pycocotools)"),
    Field("keypoints_2d", np.float32, (17, 3), "S2D: COCO-17 x, y (color pixel-index coordinates), confidence"),
    Field("keypoint_spread", np.float32, (17,), "spread of each keypoint across the TTA views, pixels"),
    Field("hard_mask", np.bool_, (17,), "H2D: keypoints with confidence > keypoint_score in a kept skeleton"),
    Field("hard_valid", np.bool_, (), "the skeleton is in the hard set (>= min_keypoints hard keypoints)"),
    Field("pose3d_soft", np.float32, (17, 3), "S3D: H36M-17 root-relative mm (x right, y down, z forward)"),
    Field("pose3d_hard", np.float32, (17, 3), "H3D: lifted from H2D; NaN where hard_valid is false"),
    Field("depth_keypoints", np.float32, (17, 2), "S2D keypoints moved onto the depth image, depth pixels"),
    Field("depth_flag", np.int8, (17,), "0 depth valid, 1 depth hole, 2 outside the depth view, 3 no depth"),
    Field(
        "pose3d_camera", np.float32, (17, 3), "S3D anchored in the color camera frame by depth, mm; NaN if no anchor"
    ),
    Field(
        "depth_consistency", np.float32, (17,), "agreement of measured depth with pose3d_camera, 0..1; NaN if no depth"
    ),
)

# Multi-view fusion (`stages.fuse`, docs/fusion.md): the person's views of one instant triangulated. COCO-17 joints
# (what the 2D keypoints are), unlike the lifter's H36M-17. A person no other view agreed with keeps the fill values.
FUSION_PERSON_FIELDS = (
    Field(
        "pose3d_room",
        np.float32,
        (17, 3),
        "M3D: COCO-17 triangulated from the views of the instant, room frame, mm; NaN where under 2 views agree",
        since=2,
        fill=np.nan,
    ),
    Field(
        "pose3d_room_camera",
        np.float32,
        (17, 3),
        "pose3d_room in this frame's color camera frame, mm (x right, y down, z forward)",
        since=2,
        fill=np.nan,
    ),
    Field("pose3d_room_views", np.int8, (17,), "views each joint was triangulated from (0: no point)", since=2),
    Field(
        "pose3d_room_error_px",
        np.float32,
        (17,),
        "mean reprojection error of the joint over those views, color pixels; NaN without a point",
        since=2,
        fill=np.nan,
    ),
    Field(
        "pose3d_room_hard",
        np.bool_,
        (17,),
        "hard M3D: the joint has >= fusion.hard_min_views views and error <= fusion.hard_max_error_px",
        since=2,
        fill=False,
    ),
    Field(
        "fusion_group",
        np.int32,
        (),
        "the fused person within the instant (rows of one instant sharing it are one person); -1 when alone",
        since=2,
        fill=-1,
    ),
)
PERSON_FIELDS = PERSON_FIELDS + FUSION_PERSON_FIELDS

PROVENANCE_KEYS = (
    "config_json",
    "config_hash",
    "checkpoints_json",
    "code_version",
    "packages_json",
    "thresholds_json",
    "tta_json",
    "created",
)
