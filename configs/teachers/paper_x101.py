# The paper teacher with mmdet's own published X-101 32x8d cascade instead of detectron2's X-152
# (no conversion; a smaller detector than the paper's). Everything else as
# configs/teachers/paper.py. `labels weights --teacher paper_x101` downloads all three checkpoints.
import runpy
from pathlib import Path

teacher = runpy.run_path(str(Path(__file__).with_name("paper.py")))["teacher"]
teacher = dict(
    teacher,
    name="paper_x101",
    detector=dict(
        teacher["detector"],
        mm_config="mmdet::cascade_rcnn/cascade-mask-rcnn_x101-32x8d_fpn_ms-3x_coco.py",
        cfg_options={},
        checkpoint="cascade_mask_rcnn_x101_32x8d_fpn_mstrain_3x_coco_20210719_180640-9ff7e76f.pth",
    ),
)
