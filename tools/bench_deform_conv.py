"""The detector's deformable convolutions, torchvision's kernel against `deform_conv2d_matmul` (issue 42), side by side.

The shapes are the paper X-152's deformable 3x3 convolutions (32 groups, one offset group) on an 800 x 1333 view:
stages 3, 4 and 5 at strides 8, 16 and 32. Each kernel runs `--repeat` times after a warm-up, in fp32 and under
autocast (bf16; fp16 too on CUDA); prints milliseconds per call, the ratio, the matmul kernel's TFLOP/s and its
largest difference from torchvision's fp32 answer. Usage:

    .venv/bin/python tools/bench_deform_conv.py [--device cuda] [--views 1] [--repeat 5] [--x152-weights DIR]

`--x152-weights DIR` (the paper teacher's checkpoints, seeded ones will do) also checks the matmul kernel layer by
layer inside the real X-152: each of its deformable layers gets the input it sees on a 480 x 640 image (offset
convolutions given weights that move samples by pixels) and both kernels' outputs are compared. Whole-network
outputs say nothing here: seeded weights amplify any difference, bf16 against fp32 with one kernel as well.
"""

from __future__ import annotations

import argparse
import time

import torch
from torchvision.ops import deform_conv2d

from orpose.teachers.kernels import deform_conv2d_matmul

# (stage, channels, height, width) of an 800 x 1333 view
SHAPES = (("res3", 512, 100, 167), ("res4", 1024, 50, 84), ("res5", 2048, 25, 42))
GROUPS = 32


def timed(function, repeat: int, device: torch.device) -> float:
    """Milliseconds per call, after one warm-up call."""
    function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat * 1000


def x152_layers(weights_dir: str, device: torch.device) -> None:
    """Both kernels on the inputs each deformable layer of the paper's X-152 sees, fp32; prints the worst."""
    from mmcv.ops import DeformConv2dPack

    from orpose.configs.schema import CONFIG_DIR, load_teacher_config
    from orpose.teachers.detector import PersonDetector
    from orpose.teachers.weights import checkpoint_path

    config = load_teacher_config("paper", {"device": device.type})
    spec = config.detector
    model = PersonDetector(spec, checkpoint_path(weights_dir, spec.checkpoint), device, 0.0, CONFIG_DIR).model
    torch.manual_seed(0)
    seen = []
    for module in model.modules():
        if isinstance(module, DeformConv2dPack):
            torch.nn.init.normal_(module.conv_offset.weight, std=0.01)  # seeded offsets are zero: move the samples
            module.register_forward_pre_hook(lambda layer, args: seen.append((layer, args[0].detach())))
    image = torch.randn(1, 3, 480, 640, generator=torch.Generator().manual_seed(1)).to(device)
    worst = largest_offset = 0.0
    with torch.no_grad():
        model.extract_feat(image)
        for layer, x in seen:
            offset = layer.conv_offset(x)
            largest_offset = max(largest_offset, offset.abs().max().item())
            expected = deform_conv2d(x, offset, layer.weight, None, layer.stride, layer.padding, layer.dilation)
            got = deform_conv2d_matmul(x, offset, layer.weight, layer.stride, layer.padding, layer.dilation)
            worst = max(worst, ((got - expected).abs().max() / expected.abs().max()).item())
    print(
        f"X-152: {len(seen)} deformable layers, each on its own input (offsets up to {largest_offset:.0f} px): "
        f"largest difference between the kernels {worst:.1e} of the layer's largest output"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--views", type=int, default=1, help="images per call (default 1)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--x152-weights", help="the paper teacher's checkpoints: check the kernels layer by layer")
    args = parser.parse_args()
    device = torch.device(args.device)
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"deformable convolution 3x3, {GROUPS} groups, {args.views} view(s) a call, on {name}")
    print("stage | precision | torchvision ms | matmul ms | matmul / torchvision | matmul TFLOP/s | largest difference")
    generator = torch.Generator().manual_seed(0)
    for stage, channels, height, width in SHAPES:
        x = torch.randn(args.views, channels, height, width, generator=generator).to(device)
        weight = (torch.randn(channels, channels // GROUPS, 3, 3, generator=generator) * 0.05).to(device)
        offset = torch.randn(args.views, 18, height, width, generator=generator).to(device)
        flops = 2 * args.views * channels * (channels // GROUPS) * 9 * height * width
        with torch.no_grad():
            reference = deform_conv2d(x, offset, weight, None, 1, 1, 1)
            for precision in precisions:
                dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
                context = (
                    torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False)
                )
                with context:
                    tv_ms = timed(lambda: deform_conv2d(x, offset, weight, None, 1, 1, 1), args.repeat, device)
                    mm_ms = timed(
                        lambda: deform_conv2d_matmul(x, offset, weight, (1, 1), (1, 1), (1, 1)), args.repeat, device
                    )
                    got = deform_conv2d_matmul(x, offset, weight, (1, 1), (1, 1), (1, 1))
                difference = (got.float() - reference).abs().max().item()
                print(
                    f"{stage} {channels}x{height}x{width} | {precision} | {tv_ms:.2f} | {mm_ms:.2f} | "
                    f"{mm_ms / tv_ms:.2f} | {flops / mm_ms / 1e9:.3f} | {difference:.2g} (values up to "
                    f"{reference.abs().max().item():.2g})"
                )
    if args.x152_weights:
        x152_layers(args.x152_weights, device)


if __name__ == "__main__":
    main()
