# Tiny residual lifter: mmpose's image pose lifter (Martinez et al., two residual blocks) at
# width 256 instead of 1024, with the same H36M normalisation statistics in its codec.
# (Width 64 reached 137 mm MPJPE on ground-truth 2D of held-out synthetic frames; see
# data/tiny_teacher/README.md.)
_base_ = "mmpose::body_3d_keypoint/image_pose_lift/h36m/image-pose-lift_tcn_8xb64-200e_h36m.py"

model = dict(backbone=dict(stem_channels=256, dropout=0.0), head=dict(in_channels=256))
