# The paper's teacher (Srivastav et al. 2020, seed 000 section 2.2): detectron2's Cascade Mask R-CNN
# X-152 32x8d FPN (IN5k, GroupNorm heads, deformable convolution; model zoo entry
# Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv) as an mmdet model with its weights converted
# from detectron2's file, HRNet-W48 384x288, and the residual lifter of Martinez et al.;
# multi-scale + flip TTA in both 2D stages (the detector's: detectron2's TEST.AUG min sizes
# 400..1200, max size 4000, flip). Thresholds from seed 002: box 0.7, keypoint 0.35, 4 keypoints.
teacher = dict(
    name="paper",
    detector=dict(
        mm_config="teachers/mm/cascade-mask-rcnn_x152-32x8d-dconv-gn_fpn_in5k_detectron2.py",
        checkpoint="cascade-mask-rcnn_x152-32x8d-dconv-gn_fpn_in5k_detectron2-e76410.pth",
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
