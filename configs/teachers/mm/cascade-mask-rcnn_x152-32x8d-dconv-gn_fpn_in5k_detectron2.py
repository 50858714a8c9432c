# detectron2's model zoo entry Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv (model id
# 18131413, `model_0039999_e76410.pkl`, COCO box AP 50.2) as an mmdet model: the paper's detector.
# Every value is read from detectron2's own config (that yaml, its Base-RCNN-FPN.yaml and
# detectron2/config/defaults.py at commit 02b5c4e2); the detectron2 key each one comes from is
# written beside it. Weights: `labels convert-detectron2` (teachers/convert_detectron2.py).
# Equality with detectron2 itself, stage by stage: `make check-detectron2`.
#
# Self-contained on purpose (no _base_): what this architecture is can be read in one file.
custom_imports = dict(imports=["orpose.teachers.mmdet_detectron2"], allow_failed_imports=False)

# detectron2 GN: nn.GroupNorm(32, channels); norm layers make their conv bias-free (as here).
_gn = dict(type="GN", num_groups=32, requires_grad=True)
_roi_align = dict(type="RoIAlign", sampling_ratio=0, aligned=True)  # POOLER_TYPE ROIAlignV2, SAMPLING_RATIO 0

# ROI_BOX_HEAD: FastRCNNConvFCHead, NUM_CONV 4, NUM_FC 1, NORM GN, CONV_DIM 256, FC_DIM 1024.
# Box2BoxTransform(weights) (clamped above only: teachers/mmdet_detectron2.py) divides the deltas by
# ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS
# (10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15): mmdet's target_stds are their inverses.
_box_head = dict(
    type="Shared4Conv1FCBBoxHead",
    in_channels=256,
    conv_out_channels=256,
    fc_out_channels=1024,
    roi_feat_size=7,
    num_classes=80,
    norm_cfg=_gn,
    reg_class_agnostic=True,  # CLS_AGNOSTIC_BBOX_REG True
    bbox_coder=dict(
        type="Detectron2DeltaXYWHBBoxCoder",
        target_means=[0.0, 0.0, 0.0, 0.0],
        target_stds=[1 / 10, 1 / 10, 1 / 5, 1 / 5],
    ),
    loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    loss_bbox=dict(type="SmoothL1Loss", beta=0.0, loss_weight=1.0),
)
_coder = dict(type="Detectron2DeltaXYWHBBoxCoder", target_means=[0.0, 0.0, 0.0, 0.0])

model = dict(
    type="CascadeRCNN",
    data_preprocessor=dict(
        type="DetDataPreprocessor",
        mean=[103.530, 116.280, 123.675],  # MODEL.PIXEL_MEAN (BGR)
        std=[1.0, 1.0, 1.0],  # MODEL.PIXEL_STD
        bgr_to_rgb=False,  # INPUT.FORMAT BGR: the network reads BGR, as the frames are decoded
        pad_mask=True,
        pad_size_divisor=32,
    ),  # FPN size_divisibility
    backbone=dict(
        type="ResNeXt",
        depth=152,  # RESNETS.DEPTH: blocks (3, 8, 36, 3)
        groups=32,  # RESNETS.NUM_GROUPS
        base_width=8,  # RESNETS.WIDTH_PER_GROUP
        num_stages=4,
        out_indices=(0, 1, 2, 3),  # RESNETS.OUT_FEATURES res2..res5
        frozen_stages=1,
        style="pytorch",  # RESNETS.STRIDE_IN_1X1 False: the stride is in the 3x3 conv
        norm_cfg=dict(type="BN", requires_grad=False),  # RESNETS.NORM FrozenBN (eps 1e-5)
        norm_eval=True,
        # RESNETS.DEFORM_ON_PER_STAGE [False, True, True, True], DEFORM_MODULATED False (v1),
        # DEFORM_NUM_GROUPS 1; the offsets conv is applied at every stride (no fallback).
        dcn=dict(type="DCN", deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True),
    ),
    neck=dict(
        type="FPN",  # FPN.NORM "" (bias, no norm), FUSE_TYPE sum, top block LastLevelMaxPool (P6)
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,  # FPN.OUT_CHANNELS
        num_outs=5,
    ),
    rpn_head=dict(
        type="RPNHead",  # StandardRPNHead: one 3x3 conv, objectness and deltas 1x1
        in_channels=256,
        feat_channels=256,
        anchor_generator=dict(
            type="AnchorGenerator",  # ANCHOR_GENERATOR.SIZES 32..512 on p2..p6, ASPECT_RATIOS, OFFSET 0.0
            scales=[8],
            ratios=[0.5, 1.0, 2.0],
            strides=[4, 8, 16, 32, 64],
            center_offset=0.0,
        ),
        bbox_coder=dict(
            type="Detectron2DeltaXYWHBBoxCoder", target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[1.0, 1.0, 1.0, 1.0]
        ),  # RPN.BBOX_REG_WEIGHTS (1, 1, 1, 1)
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
    ),
    roi_head=dict(
        type="Detectron2CascadeRoIHead",  # CascadeROIHeads: probabilities averaged, one mask head
        num_stages=3,
        stage_loss_weights=[1, 1, 1],
        bbox_roi_extractor=dict(
            type="SingleRoIExtractor",  # ROIPooler, canonical level 4 at box size 224
            roi_layer=dict(_roi_align, output_size=7),  # ROI_BOX_HEAD.POOLER_RESOLUTION 7
            out_channels=256,
            featmap_strides=[4, 8, 16, 32],
        ),  # ROI_HEADS.IN_FEATURES p2..p5
        bbox_head=[
            _box_head,
            dict(_box_head, bbox_coder=dict(_coder, target_stds=[1 / 20, 1 / 20, 1 / 10, 1 / 10])),
            dict(_box_head, bbox_coder=dict(_coder, target_stds=[1 / 30, 1 / 30, 1 / 15, 1 / 15])),
        ],
        mask_roi_extractor=dict(
            type="SingleRoIExtractor",
            roi_layer=dict(_roi_align, output_size=14),  # ROI_MASK_HEAD.POOLER_RESOLUTION 14
            out_channels=256,
            featmap_strides=[4, 8, 16, 32],
        ),
        mask_head=dict(
            type="FCNMaskHead",  # MaskRCNNConvUpsampleHead: NUM_CONV 8, NORM GN, deconv x2, 80 class masks
            num_convs=8,
            in_channels=256,
            conv_out_channels=256,
            num_classes=80,
            norm_cfg=_gn,
            loss_mask=dict(type="CrossEntropyLoss", use_mask=True, loss_weight=1.0),
        ),
    ),
    train_cfg=None,  # inference only: the weights come from detectron2's training
    test_cfg=dict(
        rpn=dict(
            nms_pre=1000,  # RPN.PRE_NMS_TOPK_TEST, per level
            max_per_img=1000,  # RPN.POST_NMS_TOPK_TEST
            nms=dict(type="nms", iou_threshold=0.7),  # RPN.NMS_THRESH
            min_bbox_size=0,
        ),  # PROPOSAL_GENERATOR.MIN_SIZE
        rcnn=dict(
            score_thr=0.05,  # ROI_HEADS.SCORE_THRESH_TEST
            nms=dict(type="nms", iou_threshold=0.5),  # ROI_HEADS.NMS_THRESH_TEST
            max_per_img=100,  # TEST.DETECTIONS_PER_IMAGE
            mask_thr_binary=0.5,
        ),
    ),
)
