"""What this install can run, checked before any frame is labelled and before any worker starts: kernel
choices and model-config layers that need mmcv's compiled ops where only mmcv-lite is installed. Reads the
teacher's configs only (no torch, no model package imported), so the driver stays light."""

from __future__ import annotations

__all__ = ["KERNEL_FIELDS", "COMPILED_ONLY_LAYERS", "require_compiled_ops", "check_kernels_available"]

KERNEL_FIELDS = ("roi_align", "nms", "deform_conv")  # detector config fields that choose a kernel


def require_compiled_ops(kernels: dict[str, str]) -> None:
    """Refuse, before any model is built, kernel choices that need mmcv's compiled ops where only mmcv-lite
    is installed. `kernels`: config field (e.g. 'detector.nms') -> 'torchvision' or 'mmcv'. Raises
    `teachers.mmcv_ext.CompiledOpMissing` naming the field."""
    from orpose.teachers.mmcv_ext import HOW_TO_GET_IT, CompiledOpMissing, compiled_mmcv

    wanting = [field for field, kernel in kernels.items() if kernel == "mmcv"]
    if wanting and not compiled_mmcv():
        raise CompiledOpMissing(
            f"{', '.join(f'{f}=mmcv' for f in wanting)} asks for mmcv's compiled kernel, which this install "
            f"(mmcv-lite) does not have: set {wanting[0]}=torchvision (the default), or {HOW_TO_GET_IT}"
        )


# Layer types of OpenMMLab model configs that only mmcv's compiled ops run (no torchvision kernel here).
COMPILED_ONLY_LAYERS = {
    "DCNv2": "modulated deformable convolution (DCN v2)",
    "ModulatedDeformConv2dPack": "modulated deformable convolution (DCN v2)",
    "CARAFE": "CARAFE upsampling",
    "CARAFEPack": "CARAFE upsampling",
    "MaskedConv2d": "masked convolution",
}


def _compiled_only_layers(cfg) -> list[tuple[str, str]]:
    """(where in the config, what) for every layer type of `cfg` (an mm config's dicts) in COMPILED_ONLY_LAYERS."""
    found, stack = [], [("model", cfg)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict) or hasattr(item, "items"):
            if item.get("type") in COMPILED_ONLY_LAYERS:
                found.append((where, COMPILED_ONLY_LAYERS[item["type"]]))
            stack += [(f"{where}.{key}", value) for key, value in item.items()]
        elif isinstance(item, (list, tuple)):
            stack += [(f"{where}[{k}]", value) for k, value in enumerate(item)]
    return sorted(found)


def check_kernels_available(config, config_root=None) -> None:
    """Before any frame is labelled: every kernel the teacher config asks for can run on this install.
    Where only mmcv-lite is installed, a `detector.<op>=mmcv` choice, or a model config with a layer that only
    mmcv's compiled ops run (e.g. DCN v2), raises `teachers.mmcv_ext.CompiledOpMissing` naming the config
    field and the op. Nothing to check where compiled mmcv is installed."""
    from orpose.configs.schema import CONFIG_DIR
    from orpose.teachers.mm_config import load_mm_config
    from orpose.teachers.mmcv_ext import HOW_TO_GET_IT, CompiledOpMissing, compiled_mmcv

    if compiled_mmcv():
        return
    config_root = config_root or CONFIG_DIR
    require_compiled_ops({f"detector.{field}": getattr(config.detector, field) for field in KERNEL_FIELDS})
    for name in ("detector", "keypoints", "lifter"):
        spec = getattr(config, name)
        layers = _compiled_only_layers(
            load_mm_config(spec.mm_config, spec.cfg_options, config_root, import_custom_modules=False).get("model", {})
        )
        if layers:
            where, what = layers[0]
            raise CompiledOpMissing(
                f"{name}.mm_config ({spec.mm_config}) has a {what} layer at {where}, which only mmcv's compiled "
                f"ops run and this install (mmcv-lite) does not have: {HOW_TO_GET_IT}"
            )
