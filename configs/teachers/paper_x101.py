# The paper teacher with mmdet's published X-101 32x8d cascade instead of the X-152 (mmdet has no
# trained X-152 cascade). Everything else as configs/teachers/paper.py. All three checkpoints of
# this teacher can be downloaded by `labels weights --teacher paper_x101`.
import runpy
from pathlib import Path

teacher = runpy.run_path(str(Path(__file__).with_name("paper.py")))["teacher"]
teacher = dict(teacher, name="paper_x101", detector=dict(
    teacher["detector"], cfg_options={},
    checkpoint="cascade_mask_rcnn_x101_32x8d_fpn_mstrain_3x_coco_20210719_180640-9ff7e76f.pth"))
