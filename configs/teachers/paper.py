# The paper's teacher (Srivastav et al. 2020, seed 000 section 2.2): Cascade Mask R-CNN with a
# ResNeXt-152 32x8d FPN backbone (mmdet's X-101 32x8d cascade config at depth 152), HRNet-W48
# 384x288, and the residual lifter of Martinez et al.; multi-scale + flip TTA in both 2D stages.
# Thresholds from seed 002: box 0.7, keypoint 0.35, 4 keypoints per skeleton.
teacher = dict(
    name="paper",
    detector=dict(
        mm_config="mmdet::cascade_rcnn/cascade-mask-rcnn_x101-32x8d_fpn_ms-3x_coco.py",
        cfg_options={"model.backbone.depth": 152},
        checkpoint="cascade-mask-rcnn_x152-32x8d_fpn_coco.pth",
        scales=[400, 500, 600, 700, 800, 900, 1000, 1100, 1200],  # detectron2's TTA min sizes
        max_side=4000,
        flip=True,
        merge="box_voting",
        merge_iou=0.55,
        max_persons=20,
        views_per_forward=2,
    ),
    keypoints=dict(
        mm_config="mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w48_8xb32-210e_coco-384x288.py",
        checkpoint="td-hm_hrnet-w48_8xb32-210e_coco-384x288-c161b7de_20220915.pth",
        flip=True,
        box_scales=[1.0, 1.15, 1.3],
        crops_per_forward=32,
    ),
    lifter=dict(
        mm_config="mmpose::body_3d_keypoint/image_pose_lift/h36m/image-pose-lift_tcn_8xb64-200e_h36m.py",
        checkpoint="simple3Dbaseline_h36m-f0ad73a4_20210419.pth",
    ),
    thresholds=dict(box_score=0.7, keypoint_score=0.35, min_keypoints=4, hard_dropped_joint="mean_pose"),
    device="auto",
    weights_dir="weights",
)
