"""Typed teacher configs: every shipped config loads; bad fields are named; overrides are typed."""

import pytest

from orpose.configs.schema import (
    CONFIG_DIR,
    ConfigError,
    TeacherConfig,
    config_hash,
    labels_hash,
    load_teacher_config,
    parse_overrides,
    to_dict,
)

SHIPPED = sorted(p.stem for p in (CONFIG_DIR / "teachers").glob("*.py"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_teacher_config_loads(name):
    config = load_teacher_config(name)
    assert isinstance(config, TeacherConfig) and config.name == name
    # the paper's thresholds (seed 002); the tiny detector's scores run lower (configs/teachers/tiny.py)
    box_score = 0.5 if name == "tiny" else 0.7
    assert (config.thresholds.box_score, config.thresholds.keypoint_score, config.thresholds.min_keypoints) == (
        box_score,
        0.35,
        4,
    )


def test_paper_config_has_the_papers_models_and_tta():
    config = load_teacher_config("paper")
    assert config.detector.mm_config.endswith("cascade-mask-rcnn_x152-32x8d-dconv-gn_fpn_in5k_detectron2.py")
    assert config.detector.flip and config.detector.scales == tuple(range(400, 1201, 100))  # detectron2's TEST.AUG
    assert config.detector.max_side == 4000
    x101 = load_teacher_config("paper_x101")
    assert "x101-32x8d" in x101.detector.mm_config and x101.detector.cfg_options == {}
    assert "hrnet-w48" in config.keypoints.mm_config and "384x288" in config.keypoints.mm_config
    assert config.keypoints.flip and len(config.keypoints.box_scales) > 1
    assert "image-pose-lift" in config.lifter.mm_config


def test_overrides_are_parsed_as_literals_and_checked():
    overrides = parse_overrides(
        ["thresholds.box_score=0.5", "detector.scales=[600, 800]", "device=cpu", "keypoints.flip=False"]
    )
    config = load_teacher_config("tiny", overrides)
    assert config.thresholds.box_score == 0.5 and config.detector.scales == (600, 800)
    assert config.device == "cpu" and config.keypoints.flip is False
    assert config_hash(config) != config_hash(load_teacher_config("tiny"))
    assert config_hash(config) == config_hash(load_teacher_config("tiny", overrides))


def test_labels_hash_ignores_how_fast_and_follows_what_decides_the_labels():
    """A run resumes under a config whose labels hash matches: batch sizes, actors and the
    RoIAlign kernel (same numbers to the bit) must not block it; a threshold must."""
    base = labels_hash(load_teacher_config("tiny"))
    speed_only = {"detector.roi_align": "mmcv", "detector.views_per_forward": 3, "run.batch_size": 2, "device": "cpu"}
    assert labels_hash(load_teacher_config("tiny", speed_only)) == base
    assert labels_hash(load_teacher_config("tiny", {"thresholds.box_score": 0.6})) != base
    assert labels_hash(load_teacher_config("tiny", {"detector.scales": [400]})) != base


def test_lowercase_true_and_false_are_booleans_on_the_command_line():
    """The bool field's error says 'expected true or false': both spellings must then work."""
    overrides = parse_overrides(["channels_last=true", "keypoints.flip=FALSE", "detector.flip=True"])
    assert overrides == {"channels_last": True, "keypoints.flip": False, "detector.flip": True}
    config = load_teacher_config("tiny", overrides)
    assert config.channels_last is True and config.keypoints.flip is False


@pytest.mark.parametrize(
    "override, field, message",
    [
        ("thresholds.box_scroe=0.5", "thresholds.box_scroe", "unknown key"),
        ("thresholds.box_score='high'", "thresholds.box_score", "expected a number"),
        ("thresholds.box_score=1.5", "thresholds.box_score", "must lie in [0, 1]"),
        ("detector.merge='average'", "detector.merge", "must be one of"),
        ("detector.scales=[]", "detector.scales", "must not be empty"),
        ("detector.scales=[600, 'x']", "detector.scales[1]", "expected an integer"),
        ("keypoints.flip=1", "keypoints.flip", "expected true or false"),
        ("device='tpu'", "device", "must be one of"),
        ("detector.views_per_forward=0", "detector.views_per_forward", "must be >= 1"),
        ("nonsense.key=1", "nonsense", "unknown key"),
        ("device.x=1", "device", "is a value, not a section"),
    ],
)
def test_bad_values_name_their_field(override, field, message):
    with pytest.raises(ConfigError) as caught:
        load_teacher_config("tiny", parse_overrides([override]))
    assert caught.value.field == field and message in str(caught.value)
    assert "tiny.py" in str(caught.value)


def test_missing_fields_and_unknown_names(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("teacher = dict(name='x', detector=dict(mm_config='a'), keypoints={}, lifter={})\n")
    with pytest.raises(ConfigError, match="'detector.checkpoint': missing"):
        load_teacher_config(path)
    with pytest.raises(ConfigError, match="teachers: .*tiny"):
        load_teacher_config("no_such_teacher")
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["justakey"])


def test_resolved_config_round_trips_through_json():
    import json

    config = load_teacher_config("paper")
    again = json.loads(json.dumps(to_dict(config)))
    from orpose.configs.schema import from_dict

    assert from_dict(TeacherConfig, again) == config
