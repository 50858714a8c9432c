"""`labels report`: the page's content checked as HTML, then opened in a real browser (headless
Chromium through Playwright): no console error, every image decoded, every section there."""

import base64
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from orpose.label_store.reader import LabelRun
from orpose.visualize.report import SECTIONS, write_report
from tests.cli import labels

ROOT = Path(__file__).parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Where the browser test leaves its screenshots for a person to look at (default: pytest's tmp dir).
SCREENSHOT_DIR = os.environ.get("REPORT_SCREENSHOT_DIR")


@pytest.fixture(scope="module")
def sample_report(sample_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample_report")
    index, _ = write_report(sample_run, out, gt=ROOT / "data/sample/annotations.json")
    return index


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory) -> tuple[Path, Path]:
    """200 generated frames (100 instants x 2 cameras) with ground truth, two of them corrupted,
    labelled by the committed tiny teacher (one detector view: the test is about the report)."""
    data = tmp_path_factory.mktemp("generated")
    result = labels(
        "synth", "--out", data, "--frames", 100, "--cameras", 2, "--width", 320, "--height", 240, timeout=900
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (data / "day1/cam1/color/000005.png").write_bytes(b"not a png")
    truncated = data / "day1/cam2/color/000009.png"
    truncated.write_bytes(truncated.read_bytes()[:500])
    run = data / "run"
    result = labels(
        "run",
        "--config",
        "tiny",
        "--frames",
        data / "manifest.jsonl",
        "--out",
        run,
        "--executor",
        "local",
        "--no-progress",
        "detector.scales=[240]",
        "detector.flip=false",
        "keypoints.box_scales=[1.0]",
        "device=cpu",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run, data / "annotations.json"


@pytest.fixture(scope="module")
def generated_report(generated_run, tmp_path_factory) -> tuple[Path, str]:
    run, gt = generated_run
    out = tmp_path_factory.mktemp("generated_report")
    result = labels("report", run, "--gt", gt, "-o", out, "--no-progress", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "index.html", result.stdout


def _section(page: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', page, re.S)
    assert match, f"section {key} missing"
    return match.group(1)


def _assert_self_contained(page: str) -> None:
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert sources
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_sample_report_has_every_section_and_figures_from_the_run(sample_report, sample_run):
    page = sample_report.read_text()
    _assert_self_contained(page)
    for key, heading in SECTIONS:
        assert heading.split()[0] in _section(page, key) or heading in page
    run = LabelRun(sample_run)
    persons = sum(len(f) for f in run)
    hard = sum(int(f.persons["hard_valid"].sum()) for f in run)
    counts = _section(page, "counts")
    total = re.search(r'<tr class="total">(.*?)</tr>', counts).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", total)
    assert cells[2:7] == [str(len(run)), str(len(run)), "0", str(persons), str(hard)]
    provenance = run.provenance()
    for name, digest in provenance["checkpoints_json"].items():
        assert name in page and digest in page  # every checkpoint with its full sha256
    assert provenance["config_hash"] in page
    assert "OK:" in _section(page, "verify")
    evaluation = _section(page, "evaluation")
    figures = json.loads(
        labels("evaluate", sample_run, "--gt", ROOT / "data/sample/annotations.json", "--json", timeout=900).stdout
    )
    assert f"{figures['box']['AP']:.3f}" in evaluation and f"{figures['keypoints']['AP']:.3f}" in evaluation
    gallery = _section(page, "gallery")
    assert gallery.count("<figure>") == min(persons, 24)
    # least confident first: the captions' mean confidences never decrease
    confidences = [float(c) for c in re.findall(r"mean confidence ([0-9.]+)", gallery)]
    assert confidences == sorted(confidences)


def test_generated_run_report_names_rejected_frames_and_evaluates_both_sets(generated_report):
    index, stdout = generated_report
    page = index.read_text()
    _assert_self_contained(page)
    rejected = _section(page, "rejected")
    assert "day1/cam1/000005" in rejected and "day1/cam2/000009" in rejected
    assert "corrupt_image" in rejected or "truncated" in rejected
    total = re.search(r'<tr class="total">(.*?)</tr>', _section(page, "counts")).group(1)
    assert re.findall(r"<td[^>]*>(.*?)</td>", total)[2:5] == ["200", "198", "2"]
    evaluation = _section(page, "evaluation")
    assert "soft set" in evaluation and "hard set" in evaluation and "PCK@0.2 MVOR protocol" in evaluation
    assert "wrote" in stdout and "gallery" in stdout  # the command prints its timings


def test_a_sampled_report_counts_the_whole_run_from_its_index(generated_run, generated_report, tmp_path):
    run, _ = generated_run
    result = labels("report", run, "-o", tmp_path, "--sample", 1, "--seed", 3, "--no-progress", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    page, full = (tmp_path / "index.html").read_text(), generated_report[0].read_text()
    assert _section(page, "counts") == _section(full, "counts")  # every frame counted, from the index
    assert _section(page, "rejected") == _section(full, "rejected")
    shards = len(LabelRun(run).shard_files)
    assert f"from 1 of {shards} shards (drawn with seed 3)" in _section(page, "distributions")
    assert f"1 of {shards} shards checked" in _section(page, "summary")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on this machine (Debian: apt-get install chromium); .ci/run installs it",
)
@pytest.mark.parametrize("which", ["sample", "generated"])
def test_report_opens_in_headless_chromium(which, request, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) is not installed")
    if which == "sample":
        index = request.getfixturevalue("sample_report")
    else:
        index = request.getfixturevalue("generated_report")[0]
    screenshots = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    screenshots.mkdir(parents=True, exist_ok=True)
    problems, requests = [], []
    with playwright.sync_playwright() as p:
        # Flags: as root in a container, and no background connections on a closed network.
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(index.as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0}))"
        )
        visible = page.evaluate(
            "ids => ids.map(id => { const s = document.getElementById(id); "
            "return s !== null && s.querySelector('h2') !== null && s.getBoundingClientRect().height > 0; })",
            [key for key, _ in SECTIONS],
        )
        page.screenshot(path=str(screenshots / f"report-{which}.png"), full_page=True)
        browser.close()
    assert problems == []
    assert images and [i["alt"] for i in images if not i["ok"]] == []
    assert all(visible), dict(zip([k for k, _ in SECTIONS], visible))
    # nothing fetched beyond the page itself: data URIs only
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []


def test_the_report_of_a_multi_view_run_counts_its_fused_persons(fused_ground_truth_run, tmp_path):
    index, _ = write_report(fused_ground_truth_run, tmp_path / "report")
    page = index.read_text()
    fused = joints = 0
    for frame_labels in LabelRun(fused_ground_truth_run):
        fused += int((frame_labels.persons["fusion_group"] >= 0).sum())
        joints += int((frame_labels.persons["pose3d_room_views"] >= 2).sum())
    assert fused > 0
    assert f"multi-view: {fused} persons fused across views" in page and f"{joints} joints triangulated" in page
