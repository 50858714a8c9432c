# The tiny teacher: the paper's three model families at tiny sizes, so the whole code path runs on
# 2 CPU cores in about a second per frame. Weights: trained on synthetic scenes and kept in the
# repository (data/tiny_teacher, see its README and SHA256SUMS); `make tiny-teacher` retrains them.
teacher = dict(
    name="tiny",
    detector=dict(
        mm_config="teachers/mm/tiny_cascade-mask-rcnn_r18-w16_fpn.py",
        checkpoint="tiny/tiny_cascade-mask-rcnn.pth",
        scales=[480, 400],  # shorter side of each TTA view
        max_side=1000,
        flip=True,
        merge="box_voting",
        merge_iou=0.55,
        max_persons=20,
        views_per_forward=1,  # on CPU a batch of views costs more per view than single views (440 vs 370 ms)
    ),
    keypoints=dict(
        mm_config="teachers/mm/tiny_td-hm_hrnetv2-w16_coco-128x96.py",
        checkpoint="tiny/tiny_hrnet.pth",
        flip=True,
        box_scales=[1.0, 1.15],
        crops_per_forward=64,
    ),
    lifter=dict(
        mm_config="teachers/mm/tiny_image-pose-lift_tcn-256_h36m.py",
        checkpoint="tiny/tiny_lifter.pth",
    ),
    # box_score 0.5, not the paper's 0.7: the tiny detector's scores run lower. On held-out
    # generated frames (seed 200) box AP50 is 0.876 at 0.7 and 0.940 at 0.5 (data/tiny_teacher/README.md).
    thresholds=dict(box_score=0.5, keypoint_score=0.35, min_keypoints=4, hard_dropped_joint="mean_pose"),
    device="auto",
    weights_dir="data/tiny_teacher",
    # On a 2-core CPU the cascade's RoI heads run mostly single-threaded: two single-threaded
    # detector actors use both cores (measured with `labels bench`, see docs/benchmarks.md).
    run=dict(detector_actors=2, keypoint_actors=1, lifter_actors=1, cpus_per_actor=0.5, torch_threads=1, batch_size=4),
)
