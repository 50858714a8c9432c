# A small student that trains on CPU in minutes: the tiny top-down HRNetV2 (16/32/64/128 channels, 128x96
# input, 32x24 heatmaps) on the soft set of a run of or-pose-labels, each keypoint's heatmap loss weighted by
# the teacher's confidence (Srivastav et al. 2020). The name follows mmpose's: the method (top-down heatmap),
# the model, the labels (soft set, color), the schedule (batch 16, 300 iterations), the input size.
#   labels train-student configs/students/td-hm_hrnetv2-w16_orpose-soft-color_8xb16-300it_128x96.py --run RUN
# The hard set: train_dataloader.dataset.label_set=hard (seed 002 also sets min_score=0.7).
_base_ = "../teachers/mm/tiny_td-hm_hrnetv2-w16_coco-128x96.py"

custom_imports = dict(imports=["orpose.training.student"], allow_failed_imports=False)
default_scope = "mmpose"

train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters=300, val_interval=100000)
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.05, by_epoch=False, begin=0, end=30),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=30, end=300, eta_min=1e-4),
]
default_hooks = dict(
    logger=dict(type="LoggerHook", interval=10),
    checkpoint=dict(type="CheckpointHook", interval=300, by_epoch=False, save_last=True, save_best=None),
    visualization=dict(type="PoseVisualizationHook", enable=False),
)
log_processor = dict(by_epoch=False)
visualizer = dict(type="PoseLocalVisualizer", vis_backends=[dict(type="LocalVisBackend")], name="visualizer")
randomness = dict(seed=0)
load_from = None

codec = dict(type="MSRAHeatmap", input_size=(96, 128), heatmap_size=(24, 32), sigma=1)
train_dataloader = dict(
    _delete_=True,
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    dataset=dict(
        type="OrPoseKeypointDataset",
        run="",  # set by `labels train-student --run`
        label_set="soft",
        data_mode="topdown",
        pipeline=[
            dict(type="LoadImage"),
            dict(type="GetBBoxCenterScale"),
            dict(type="RandomFlip", direction="horizontal"),
            dict(type="RandomBBoxTransform"),
            dict(type="TopdownAffine", input_size=codec["input_size"]),
            dict(type="GenerateTarget", encoder=codec),
            dict(type="ApplyKeypointWeights"),  # the soft set's confidences (or the hard mask) as loss weights
            dict(type="PackPoseInputs"),
        ],
    ),
)
