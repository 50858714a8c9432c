"""What a stage may be built from: the typed config, the weights folder and the cameras."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from orpose.configs.schema import TeacherConfig
from orpose.frames.calibration import CameraCalibration

__all__ = ["StageContext"]


@dataclass(frozen=True)
class StageContext:
    """Handed to every stage's `from_config`; each stage takes from it only what it needs.

    `torch_threads`: intra-op threads of a model stage; None leaves torch's default (every core),
    what the in-process executor wants; Ray's actors share the machine and take `run.torch_threads`.
    """

    config: TeacherConfig
    weights_dir: Path
    calibrations: Mapping[str, CameraCalibration] = field(default_factory=dict)
    torch_threads: int | None = None

    def set_torch_threads(self) -> None:
        """The process's torch settings for this run: its threads, and cuDNN's algorithm search."""
        import torch

        if self.torch_threads is not None:
            torch.set_num_threads(self.torch_threads)
        torch.backends.cudnn.benchmark = self.config.cudnn_benchmark
