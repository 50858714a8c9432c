"""`labels probe`'s picture (`OUT/probe.png`): each 2D student's keypoint AP per label set beside the teacher on the
same frames, as seed 000's figure sets students against their teacher across resolutions, and the 3D student's
MPJPE per label set; error bars are the spread over the seeds."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_probe"]


def _student_label(student: str, table: dict) -> str:
    return f"{table['modality']} x{table['factor']:g}" if "modality" in table else student


def plot_probe(result: dict, path: str | Path) -> Path:
    """Draw the probe's result (`ProbeResult` as a dict, or probe.json) to `path` (PNG)."""
    students = result["students"]
    two_d = {name: table for name, table in students.items() if name != "3d"}
    panels = (1 if two_d else 0) + (1 if "3d" in students else 0)
    if panels == 0:
        raise ValueError("the probe's result has no student to draw")
    figure, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.2), squeeze=False)
    at = 0
    if two_d:
        ax = axes[0, at]
        at += 1
        label_sets = list(dict.fromkeys(row["label_set"] for t in two_d.values() for row in t["rows"]))
        label_sets.append("teacher")
        width = 0.8 / len(label_sets)
        for k, label_set in enumerate(label_sets):
            means, spreads = [], []
            for table in two_d.values():
                if label_set == "teacher":
                    means.append(table["teacher"].get("AP", float("nan")) if table["teacher"] else float("nan"))
                    spreads.append(0.0)
                    continue
                row = next((r for r in table["rows"] if r["label_set"] == label_set), None)
                means.append(row["AP"]["mean"] if row else float("nan"))
                spreads.append(row["AP"]["sd"] if row else 0.0)
            positions = [i + (k - (len(label_sets) - 1) / 2) * width for i in range(len(two_d))]
            ax.bar(positions, means, width, yerr=spreads, label=label_set, capsize=2)
        ax.set_xticks(range(len(two_d)), [_student_label(n, t) for n, t in two_d.items()])
        ax.set_ylabel("keypoint AP (OKS), ground-truth boxes")
        ax.set_ylim(0, 1)
        ax.set_title("2D students on held-out scenes")
        ax.legend(fontsize=7)
    if "3d" in students:
        ax = axes[0, at]
        rows = students["3d"]["rows"]
        ax.bar(
            range(len(rows)),
            [r["mpjpe_upper_body_mm"]["mean"] for r in rows],
            yerr=[r["mpjpe_upper_body_mm"]["sd"] for r in rows],
            capsize=2,
            color="tab:gray",
        )
        teacher = result.get("teacher", {}).get("test_mpjpe_upper_body_mm")
        if teacher is not None:
            ax.axhline(teacher, color="tab:red", linestyle="--", label="the teacher")
            ax.legend(fontsize=7)
        ax.set_xticks(range(len(rows)), [r["label_set"] for r in rows], rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("upper-body MPJPE (mm), lower is better")
        ax.set_title("3D student on held-out scenes")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
