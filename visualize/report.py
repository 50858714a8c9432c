"""`labels report`: one self-contained HTML page that answers "can I train on this run?".

`OUT_DIR/index.html` holds everything (styles inline, pictures as data URIs; no script, no font,
no network), so it can be mailed or attached to a ticket. Sections, in order: a summary of checks,
provenance, counts per day and camera, rejected frames, distributions, `labels verify`, evaluation
against ground truth (when given), and a gallery of the least confident persons, color and depth
side by side. Statistics are streamed shard by shard (`label_store.statistics`) and the gallery
has a fixed size, so time grows with the run and memory does not.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from orpose.evaluation.evaluate import evaluate  # noqa: E402
from orpose.evaluation.mvor import MVOR_GROUPS  # noqa: E402
from orpose.frames.decode import decode_color, decode_depth  # noqa: E402
from orpose.frames.sources import depth_counts_to_mm  # noqa: E402
from orpose.joints import COCO_KEYPOINTS  # noqa: E402
from orpose.label_store.inspection import verify_run  # noqa: E402
from orpose.label_store.reader import FrameLabels, LabelRun  # noqa: E402
from orpose.label_store.statistics import RunStatistics, collect_statistics  # noqa: E402
from orpose.visualize.drawing import (  # noqa: E402
    SIDE_COLORS,
    draw_depth_keypoints,
    draw_skeleton_2d,
    person_color,
)
from orpose.visualize.run_figures import no_data, run_figures  # noqa: E402

__all__ = ["write_report", "ReportTimings", "SECTIONS"]

# The page's sections: (element id, heading). Tests check that each is there.
SECTIONS = (
    ("summary", "Can I train on this run?"),
    ("provenance", "Provenance"),
    ("counts", "Frames and persons per day and camera"),
    ("rejected", "Rejected frames"),
    ("distributions", "Distributions"),
    ("verify", "labels verify"),
    ("evaluation", "Evaluation against ground truth"),
    ("gallery", "Least confident persons"),
)
_REJECTED_WARN = 0.05  # a run rejecting more than this share of its frames gets a warning in the summary

_STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.5em 3em; color: #222; line-height: 1.4; }
header { border-bottom: 2px solid #444; margin-bottom: 1em; }
nav a { margin-right: 1em; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; background: #f4f4f4; }
code, .mono { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 0.9em; }
.ok { color: #1a7f37; font-weight: bold; } .warn { color: #9a6700; font-weight: bold; }
.bad { color: #cf222e; font-weight: bold; } .note { color: #555; font-size: 0.9em; }
figure { margin: 0.5em 0 1.5em; } figure img { max-width: 100%; border: 1px solid #ddd; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 1em; }
.gallery figure { margin: 0; } figcaption { font-size: 0.85em; }
.legend span { display: inline-block; padding: 0 0.6em; margin-right: 0.5em; color: white; border-radius: 3px; }
"""


@dataclass
class ReportTimings:
    """Seconds spent on each part of a report, for `labels report` to print."""

    statistics: float = 0.0
    verify: float = 0.0
    evaluation: float = 0.0
    plots: float = 0.0
    gallery: float = 0.0
    total: float = 0.0


def _esc(value) -> str:
    return html.escape(str(value))


def _png(figure) -> str:
    """A matplotlib figure as a data URI (and closed)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_esc(alt)}">'


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset(), total: bool = False) -> str:
    head = "".join(f'<th class="{"n" if i in numeric else ""}">{_esc(h)}</th>' for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        cls = ' class="total"' if total and r == len(rows) - 1 else ""
        cells = "".join(f'<td class="{"n" if i in numeric else ""}">{_esc(v)}</td>' for i, v in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


# ---------------------------------------------------------------------------------------------- sections


def _summary(stats: RunStatistics, problems: list[str], provenance: dict, figures: dict | None) -> str:
    checks = []
    checked = f"{stats.sampled[0]} of {stats.sampled[1]} shards checked" if stats.sampled else f"{stats.shards} shards"
    checks.append(
        ("ok", f"labels verify: shards, checksums, manifest and plan sound ({checked})")
        if not problems
        else ("bad", f"labels verify: {len(problems)} problem(s), see below")
    )
    rejected = stats.frames - stats.labelled
    share = rejected / stats.frames if stats.frames else 0.0
    checks.append(
        (
            "warn" if share > _REJECTED_WARN else "ok",
            f"{stats.labelled} of {stats.frames} frames labelled; {rejected} rejected "
            f"({_percent(rejected, stats.frames)})",
        )
    )
    checks.append(
        (
            "ok" if stats.hard_persons else "warn",
            f"{stats.persons} persons (soft set), {stats.hard_persons} in the hard set "
            f"({_percent(stats.hard_persons, stats.persons)})",
        )
    )
    if stats.fused_persons:
        joints = int(stats.fused_joint_views[2:].sum())
        checks.append(
            (
                "ok",
                f"multi-view: {stats.fused_persons} persons fused across views "
                f"({_percent(stats.fused_persons, stats.persons)} of the persons read), {joints} joints triangulated "
                f"({_percent(int(stats.fused_joint_views[3:].sum()), joints)} from 3 or more views), "
                f"{_percent(stats.fused_hard_joints, joints)} of them hard; median reprojection error "
                f"{stats.fused_error.quantiles(0.5)[0, 0]:.1f} px",
            )
        )
    versions = len(stats.provenances)
    checks.append(
        ("ok", f"one teacher configuration and code version in every shard ({provenance.get('config_name', '?')})")
        if versions <= 1
        else ("warn", f"{versions} different (config hash, code version) pairs across shards: see Provenance")
    )
    if figures:
        soft = figures["soft"]
        checks.append(
            (
                "ok",
                f"against {Path(soft['ground_truth']).name}: box AP {soft['box']['AP']:.3f}, keypoint AP "
                f"{soft['keypoints']['AP']:.3f}, PCK@0.2 {soft['pck']['mean']:.3f} (soft set)",
            )
        )
    items = "".join(
        f'<li><span class="{cls}">{"✓" if cls == "ok" else "!"}</span> {_esc(text)}</li>' for cls, text in checks
    )
    return f"<ul>{items}</ul>"


def _provenance(run: LabelRun, stats: RunStatistics) -> tuple[str, dict]:
    provenance = run.provenance() if run.shard_files else {}
    config = provenance.get("config_json") or {}
    info = {"config_name": config.get("name", "?")}
    rows = [
        ["teacher", config.get("name", "?")],
        ["config hash", provenance.get("config_hash", "?")],
        ["code version", provenance.get("code_version", "?")],
        ["created", provenance.get("created", "?")],
        ["device / precision", f"{config.get('device', '?')} / {config.get('precision', '?')}"],
    ]
    parts = [_table(["", "value"], rows)]
    checkpoints = provenance.get("checkpoints_json") or {}
    parts.append("<h3>Checkpoints</h3>")
    parts.append(_table(["file", "sha256"], [[name, digest] for name, digest in sorted(checkpoints.items())]))
    thresholds = provenance.get("thresholds_json") or {}
    parts.append("<h3>Thresholds</h3>")
    parts.append(_table(["threshold", "value"], [[k, json.dumps(v)] for k, v in sorted(thresholds.items())]))
    tta = provenance.get("tta_json") or {}
    parts.append("<h3>Test-time augmentation</h3>")
    parts.append(
        _table(
            ["model", "setting", "value"],
            [[model, k, json.dumps(v)] for model, settings in sorted(tta.items()) for k, v in sorted(settings.items())],
        )
    )
    packages = provenance.get("packages_json") or {}
    parts.append("<h3>Packages</h3>")
    parts.append(_table(["package", "version"], [[k, v] for k, v in sorted(packages.items())]))
    if len(stats.provenances) > 1:
        parts.append("<h3>Shards made by different configurations or code</h3>")
        parts.append(
            _table(
                ["config hash", "code version", "shards"],
                [[h[:16], code, n] for (h, code), n in sorted(stats.provenances.items())],
                {2},
            )
        )
    return "".join(parts), info


def _counts(stats: RunStatistics) -> str:
    rows, total = [], [0] * 7
    for (day, camera), g in sorted(stats.groups.items()):
        values = [g.frames, g.labelled, g.rejected, g.persons, g.hard_persons, g.keypoints, g.hard_keypoints]
        total = [a + b for a, b in zip(total, values)]
        rows.append([day or "-", camera, *values[:5], _percent(g.hard_persons, g.persons), *values[5:]])
    rows.append(["all", "", *total[:5], _percent(total[4], total[3]), *total[5:]])
    header = ["day", "camera", "frames", "labelled", "rejected", "persons (soft)", "persons (hard)", "hard share"]
    header += ["keypoints (soft)", "keypoints (hard)"]
    table = _table(header, rows, numeric=set(range(2, 10)), total=True)
    hist = ", ".join(f"{n} persons: {c} frames" for n, c in sorted(stats.persons_per_frame.items()))
    return table + f'<p class="note">Labelled frames by persons found: {_esc(hist or "none")}.</p>'


def _rejected(stats: RunStatistics) -> str:
    rejected = sum(stats.rejected_by_reason.values())
    if not rejected:
        return '<p class="ok">No frame was rejected.</p>'
    parts = [_table(["reason", "frames"], sorted(stats.rejected_by_reason.items()), {1})]
    shown = len(stats.rejected)
    parts.append(
        f'<p class="note">{"All" if shown == rejected else f"The first {shown} of"} {rejected} rejected frames, '
        "with the error that rejected each (the shard's reject_detail):</p>"
    )
    parts.append(
        _table(
            ["frame", "camera", "reason", "detail"],
            [[r["frame_id"], r["camera_id"], r["reason"], r["detail"]] for r in stats.rejected],
        )
    )
    return "".join(parts)


def _per_joint_table(stats: RunStatistics) -> str:
    q_conf = stats.confidence.quantiles([0.1, 0.5, 0.9])
    q_spread = stats.spread.quantiles([0.5, 0.9])
    fraction = stats.hard_fraction_per_joint()
    rows = [
        [name, *(_fmt(v) for v in q_conf[j]), *(_fmt(v, 2) for v in q_spread[j]), _fmt(fraction[j], 2)]
        for j, name in enumerate(COCO_KEYPOINTS)
    ]
    header = ["joint", "confidence q10", "q50", "q90", "TTA spread q50 (px)", "q90 (px)", "hard share"]
    return "<h3>Per joint</h3>" + _table(header, rows, set(range(1, 7)))


def _distributions(stats: RunStatistics, threshold: float, box_threshold: float | None) -> str:
    figures = [(_png(figure), alt) for _, figure, alt in run_figures(stats, threshold, box_threshold)]
    parts = [f"<figure>{_img(uri, alt)}<figcaption>{_esc(alt)}</figcaption></figure>" for uri, alt in figures]
    if stats.sampled:
        read, total, seed = stats.sampled
        parts.insert(
            0,
            f'<p class="note">Keypoint confidence, TTA spread and depth from {read} of {total} shards (drawn with '
            f"seed {seed}); counts, detector scores, hard shares and the gallery from the whole run's index.</p>",
        )
    return "".join(parts) + _per_joint_table(stats)


def _verify(problems: list[str]) -> str:
    if not problems:
        return '<p class="ok">OK: every shard\'s schema and checksums, the manifest and the plan are sound.</p>'
    items = "".join(f"<li class='mono'>{_esc(p)}</li>" for p in problems)
    return f'<p class="bad">{len(problems)} problem(s):</p><ul>{items}</ul>'


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def _scaled(value, factor: float):
    return None if value is None else value * factor


def _evaluation(figures: dict | None) -> str:
    if figures is None:
        return '<p class="note">No ground truth given (<code>--gt GT.json</code> adds this section).</p>'
    soft, hard = figures["soft"], figures["hard"]
    parts = [
        f"<p>Ground truth <code>{_esc(soft['ground_truth'])}</code>: {soft['images']} images, {soft['gt_persons']} "
        f"persons, keypoints {_esc(soft['keypoint_set'])}. Predictions: {soft['predictions']} persons (soft set), "
        f"{hard['predictions']} (hard set). The same figures as <code>labels evaluate</code>.</p>"
    ]
    parts += [f'<p class="note">repaired in the ground truth: {_esc(r)}</p>' for r in soft["repairs"]]
    rows = []

    def row(name, get, digits=3):
        rows.append([name, _fmt(get(soft), digits), _fmt(get(hard), digits)])

    box_figures = (("AP", "AP"), ("AP50", "AP50"), ("AP75", "AP75"), ("AR1", "AR1"), ("AR10", "AR10"), ("AR", "AR100"))
    for key, name in box_figures:
        row(f"box {name}", lambda f, key=key: f["box"][key])
    row("box AR1 at IoU 0.5", lambda f: f["box"]["AR1_iou50"])
    row("box AR10 at IoU 0.5", lambda f: f["box"]["AR10_iou50"])
    for key in ("AP", "AP50", "AP75", "AR"):
        row(f"keypoint {key} (OKS)", lambda f, key=key: f["keypoints"][key])
    row("PCK@0.2 mean", lambda f: f["pck"]["mean"])
    for name in (*MVOR_GROUPS, "mean"):
        row(f"PCK@0.2 MVOR protocol: {name} (%)", lambda f, name=name: f["pck_mvor"][name], 1)
    row("left/right pairs swapped (%)", lambda f: _scaled(f["left_right_swaps"]["rate"], 100), 1)
    mpjpe = (
        ("mpjpe_upper_body_mm", "MPJPE upper body, root-relative (mm)"),
        ("mpjpe_camera_mm", "MPJPE camera frame (mm)"),
    )
    for key, name in mpjpe:
        row(name, lambda f, key=key: (f.get(key) or {}).get("mean"), 1)
    parts.append(_table(["figure", "soft set", "hard set"], rows, {1, 2}))
    per_joint = [
        [name, _fmt(soft["pck"]["per_joint"].get(name)), _fmt(hard["pck"]["per_joint"].get(name))]
        for name in soft["pck"]["per_joint"]
    ]
    parts.append("<h3>PCK@0.2 per joint</h3>")
    parts.append(_table(["joint", "soft set", "hard set"], per_joint, {1, 2}))
    return "".join(parts)


def _crop(box, width: int, height: int, margin: float = 0.2) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin + 8, (y2 - y1) * margin + 8
    return max(0.0, x1 - mx), max(0.0, y1 - my), min(float(width), x2 + mx), min(float(height), y2 + my)


def render_person(labels: FrameLabels, k: int, threshold: float) -> str:
    """One person of a frame as a data URI: its color crop with the skeleton (soft and hard) beside
    its keypoints carried onto the depth frame."""
    frame, p = labels.frame, labels.persons
    has_depth = bool(frame["depth_path"])
    figure, axes = plt.subplots(1, 2 if has_depth else 1, figsize=(6.4 if has_depth else 3.4, 4.0), squeeze=False)
    ax = axes[0, 0]
    w, h = (int(v) for v in frame["color_size"])
    try:
        ax.imshow(decode_color(frame["color_path"], labels.frame_id)[:, :, ::-1])
    except Exception as error:  # noqa: BLE001 - a moved or deleted image is shown as its error, not a crash
        no_data(ax, f"color image unreadable:\n{error}")
    x1, y1, x2, y2 = p["box"][k]
    ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=person_color(0), linewidth=1.2))
    draw_skeleton_2d(ax, p["keypoints_2d"][k], p["hard_mask"][k], threshold, size=14)
    cx1, cy1, cx2, cy2 = _crop(p["box"][k], w, h)
    ax.set_xlim(cx1, cx2)
    ax.set_ylim(cy2, cy1)
    ax.set_title("color", fontsize=8)
    ax.axis("off")
    if has_depth:
        ax = axes[0, 1]
        try:
            depth = depth_counts_to_mm(decode_depth(frame["depth_path"], labels.frame_id), frame["depth_unit_mm"])
            ax.imshow(np.ma.masked_equal(depth, 0), cmap="turbo")
        except Exception as error:  # noqa: BLE001
            no_data(ax, f"depth image unreadable:\n{error}")
        uv, flag = p["depth_keypoints"][k], p["depth_flag"][k]
        draw_depth_keypoints(ax, uv, flag, size=12)
        dw, dh = (int(v) for v in frame["depth_size"])
        shown = np.isfinite(uv).all(1) & (flag <= 1)
        if shown.any():
            lo, hi = uv[shown].min(0), uv[shown].max(0)
            dx1, dy1, dx2, dy2 = _crop((*lo, *hi), dw, dh, margin=0.35)
        else:
            dx1, dy1, dx2, dy2 = 0, 0, dw, dh
        ax.set_xlim(dx1, dx2)
        ax.set_ylim(dy2, dy1)
        ax.set_title("depth frame (x = depth hole)", fontsize=8)
        ax.axis("off")
    figure.tight_layout()
    return _png(figure)


def _gallery(run: LabelRun, stats: RunStatistics, threshold: float) -> str:
    picked = stats.gallery()
    if not picked:
        return '<p class="note">No person to show.</p>'
    legend = "".join(f'<span style="background:{c}">{side}</span>' for side, c in SIDE_COLORS.items())
    parts = [
        f"<p>The {len(picked)} persons with the lowest mean keypoint confidence of the run, least confident first: "
        "the ones a reviewer should look at. Thick limbs join hard keypoints; hollow joints and dashed limbs are "
        f"at or below the hard threshold ({threshold}).</p>",
        f'<p class="legend">{legend}</p><div class="gallery">',
    ]
    for entry in picked:
        labels = run.get(entry.frame_id)
        p, k = labels.persons, entry.person
        hard = int(p["hard_mask"][k].sum())
        caption = (
            f"<b>{_esc(entry.frame_id)}</b> person {k}: mean confidence {1 - entry.uncertainty:.2f}, "
            f"{hard}/17 hard{' (in the hard set)' if p['hard_valid'][k] else ' (not in the hard set)'}, "
            f"detector score {float(p['score'][k]):.2f}, "
            f"median TTA spread {float(np.median(p['keypoint_spread'][k])):.1f} px"
        )
        uri = render_person(labels, k, threshold)
        parts.append(f"<figure>{_img(uri, f'{entry.frame_id} person {k}')}<figcaption>{caption}</figcaption></figure>")
    parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------- the page


def write_report(
    run_path: str | Path,
    out_dir: str | Path,
    gt: str | Path | None = None,
    gallery_size: int = 24,
    progress: bool = False,
    sample: int | None = None,
    seed: int = 0,
) -> tuple[Path, ReportTimings]:
    """Write `out_dir/index.html` for a run directory (or one shard); returns its path and timings. With `sample`,
    the whole run's counts come from its index and the distributions and `labels verify` from `sample` shards
    drawn with `seed` (`collect_statistics`), so the page takes the same time whatever the run's size."""
    start = time.perf_counter()
    timings = ReportTimings()
    run = LabelRun(run_path)

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        setattr(timings, name, now - since)
        return now

    t = time.perf_counter()
    stats = collect_statistics(run, progress=progress, gallery_size=gallery_size, sample=sample, seed=seed)
    t = lap("statistics", t)
    problems = verify_run(run_path, sample=sample, seed=seed)
    t = lap("verify", t)
    figures = None
    if gt is not None:
        figures = {s: evaluate(gt, run=run, label_set=s) for s in ("soft", "hard")}
    t = lap("evaluation", t)
    provenance_html, info = _provenance(run, stats)
    thresholds = (run.provenance().get("thresholds_json") or {}) if run.shard_files else {}
    threshold = float(thresholds.get("keypoint_score", 0.35))
    bodies = {
        "summary": _summary(stats, problems, info, figures),
        "provenance": provenance_html,
        "counts": _counts(stats),
        "rejected": _rejected(stats),
        "distributions": _distributions(stats, threshold, thresholds.get("box_score")),
        "verify": _verify(problems),
        "evaluation": _evaluation(figures),
    }
    t = lap("plots", t)
    bodies["gallery"] = _gallery(run, stats, threshold)
    lap("gallery", t)
    title = f"Label run report: {Path(run_path).resolve().name} ({info['config_name']} teacher)"
    nav = "".join(f'<a href="#{key}">{_esc(heading)}</a>' for key, heading in SECTIONS)
    sections = "".join(
        f'<section id="{key}"><h2>{_esc(heading)}</h2>{bodies[key]}</section>' for key, heading in SECTIONS
    )
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{_STYLE}</style></head><body><header><h1>{_esc(title)}</h1>"
        f'<p class="note">{_esc(Path(run_path).resolve())} &middot; {stats.frames} frames in {stats.shards} shards '
        f"&middot; report written {created} by <code>labels report</code></p><nav>{nav}</nav></header>"
        f"{sections}</body></html>"
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    timings.total = time.perf_counter() - start
    return index, timings
