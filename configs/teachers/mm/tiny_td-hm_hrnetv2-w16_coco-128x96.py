# Tiny top-down HRNetV2: mmpose's HRNet-W32 COCO config with 16/32/64/128 channels, two blocks per
# branch, a 128x96 input (32x24 heatmaps), and the HRNetV2 head input of mmpose's face and hand
# configs: all four branches upsampled and concatenated (FeatureMapProcessor), so the heatmaps see
# the coarse, wide-context branches directly. Same family and decoder as HRNet-W48 384x288.
# Why not the 1-block W8 of the first sets: its heatmaps were read from 8 channels of the finest
# branch only, and it swapped persons' left and right in about half of the cases.
_base_ = "mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w32_8xb64-210e_coco-256x192.py"

codec = dict(type="MSRAHeatmap", input_size=(96, 128), heatmap_size=(24, 32), sigma=1)

model = dict(
    backbone=dict(
        extra=dict(
            stage1=dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=(1,), num_channels=(16,)),
            stage2=dict(num_modules=1, num_branches=2, block="BASIC", num_blocks=(2, 2), num_channels=(16, 32)),
            stage3=dict(num_modules=1, num_branches=3, block="BASIC", num_blocks=(2, 2, 2), num_channels=(16, 32, 64)),
            stage4=dict(
                num_modules=1,
                num_branches=4,
                block="BASIC",
                num_blocks=(2, 2, 2, 2),
                num_channels=(16, 32, 64, 128),
                multiscale_output=True,
            ),
            upsample=dict(mode="bilinear", align_corners=False),
        ),
        init_cfg=None,
    ),
    neck=dict(type="FeatureMapProcessor", concat=True),
    head=dict(in_channels=240, conv_out_channels=(128,), conv_kernel_sizes=(1,), decoder=codec),
    test_cfg=dict(flip_test=False),
)
