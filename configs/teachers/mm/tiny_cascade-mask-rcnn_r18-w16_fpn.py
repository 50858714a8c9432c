# Tiny Cascade Mask R-CNN: mmdet's cascade mask config with a ResNet-18 at 1/4 width, a 32-channel
# FPN and one class (person). Same family and code path as the paper's X-152 cascade, small enough
# to label a frame on 2 CPU cores in well under a second.
_base_ = "mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py"

_bbox_head = dict(
    type="Shared2FCBBoxHead",
    in_channels=32,
    fc_out_channels=64,
    roi_feat_size=7,
    num_classes=1,
    bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[0.1, 0.1, 0.2, 0.2]),
    reg_class_agnostic=True,
    loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    loss_bbox=dict(type="SmoothL1Loss", beta=1.0, loss_weight=1.0),
)

model = dict(
    backbone=dict(
        type="ResNet",
        depth=18,
        base_channels=16,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type="BN", requires_grad=True),
        norm_eval=False,
        init_cfg=None,
    ),
    neck=dict(type="FPN", in_channels=[16, 32, 64, 128], out_channels=32, num_outs=5),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=[
            _bbox_head,
            dict(
                _bbox_head,
                bbox_coder=dict(
                    type="DeltaXYWHBBoxCoder", target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[0.05, 0.05, 0.1, 0.1]
                ),
            ),
            dict(
                _bbox_head,
                bbox_coder=dict(
                    type="DeltaXYWHBBoxCoder",
                    target_means=[0.0, 0.0, 0.0, 0.0],
                    target_stds=[0.033, 0.033, 0.067, 0.067],
                ),
            ),
        ],
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(num_convs=2, in_channels=32, conv_out_channels=32, num_classes=1),
    ),
    test_cfg=dict(rcnn=dict(max_per_img=50)),
)
