# Tiny residual lifter: mmpose's image pose lifter (Martinez et al., two residual blocks) at
# width 64 instead of 1024, with the same H36M normalisation statistics in its codec.
_base_ = 'mmpose::body_3d_keypoint/image_pose_lift/h36m/image-pose-lift_tcn_8xb64-200e_h36m.py'

model = dict(backbone=dict(stem_channels=64, dropout=0.0), head=dict(in_channels=64))
