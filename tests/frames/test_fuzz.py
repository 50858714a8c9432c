"""Fuzzing over real bytes: the bundled sample's PNGs, its manifest and its calibration, corrupted in the ways
files really break. Each case must either decode to a frame the calibration describes or be refused with a named
reason (a FrameError, or a SourceError / CalibrationError naming the file): never another exception, and memory
stays within a bound. A fixed seed; FUZZ_CASES=N runs more. The counts by outcome are printed (`pytest -s`)."""

import json
import os
import random
import resource
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from orpose.frames.calibration import load_calibration
from orpose.frames.decode import decode_color, decode_depth
from orpose.frames.errors import CalibrationError, FrameError, SourceError
from orpose.frames.sources import ManifestSource

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "data" / "sample"
CASES = int(os.environ.get("FUZZ_CASES", "1000"))
SEED = 20261130
MEMORY_BOUND_MB = 200  # growth of this process's peak RSS over all image cases (one frame is 0.9 MB)


def chunks(png: bytes) -> list[tuple[int, int, bytes]]:
    """(start, end, type) of each chunk of a PNG, after its 8-byte signature."""
    out, position = [], 8
    while position + 8 <= len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        end = min(len(png), position + 12 + length)
        out.append((position, end, png[position + 4 : position + 8]))
        position = end
    return out


def with_chunk(png: bytes, start: int, end: int, kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return png[:start] + struct.pack(">I", len(data)) + kind + data + crc + png[end:]


def mutate(png: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One corruption of a real PNG, named."""
    parts = chunks(png)
    kind = rng.choice(["flip", "truncate", "header", "crc", "drop_idat", "duplicate_idat"])
    if kind == "flip":
        data = bytearray(png)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return kind, bytes(data)
    if kind == "truncate":
        boundaries = sorted({b for start, end, _ in parts for b in (start, start + 8, end)} | {8})
        return kind, png[: rng.choice(boundaries[:-1])]
    if kind == "header":
        start, end, _ = parts[0]  # IHDR
        fields = bytearray(png[start + 8 : start + 21])
        field = rng.choice(["width", "height", "bits", "color_type"])
        if field in ("width", "height"):
            value = rng.choice([0, 1, 2**31 - 1, 60000, rng.randrange(1, 5000)])
            struct.pack_into(">I", fields, 0 if field == "width" else 4, value)
        else:
            fields[8 if field == "bits" else 9] = rng.choice([0, 1, 2, 4, 8, 16, 3, 6, 255])
        return f"header_{field}", with_chunk(png, start, end, b"IHDR", bytes(fields))
    if kind == "crc":
        start, end, _ = rng.choice(parts)
        data = bytearray(png)
        data[end - 1 - rng.randrange(4)] ^= 0xFF
        return kind, bytes(data)
    idats = [(s, e) for s, e, t in parts if t == b"IDAT"]
    start, end = rng.choice(idats)
    if kind == "drop_idat":
        return kind, png[:start] + png[end:]
    return kind, png[:end] + png[start:end] + png[end:]


def test_corrupted_pngs_decode_whole_or_are_refused_with_a_reason(tmp_path):
    calibration = load_calibration(SAMPLE / "calibration.json")["day1/cam1"]
    color = (SAMPLE / "day1/cam1/color/000001.png").read_bytes()
    depth_files = sorted(SAMPLE.glob("day1/*/depth/*.png"))
    depth = depth_files[0].read_bytes() if depth_files else None
    rng = random.Random(SEED)
    outcomes: Counter = Counter()
    path = tmp_path / "case.png"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for case in range(CASES):
        is_depth = depth is not None and case % 4 == 3
        name, data = mutate(depth if is_depth else color, rng)
        path.write_bytes(data)
        try:
            if is_depth:
                image = decode_depth(path, f"case{case}", calibration.depth_grid)
                assert image.dtype == np.uint16 and image.shape == (
                    calibration.depth_grid.height,
                    calibration.depth_grid.width,
                )
            else:
                image = decode_color(path, f"case{case}", calibration.color)
                assert image.dtype == np.uint8 and image.shape == (calibration.color.height, calibration.color.width, 3)
            outcomes["decoded"] += 1
        except FrameError as error:
            assert f"case{case}" in str(error) and str(path) in str(error)
            outcomes[error.reason] += 1
        except Exception as error:  # noqa: BLE001
            raise AssertionError(f"case {case} ({name}): {type(error).__name__}: {error}") from error
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"\n{CASES} corrupted PNGs (seed {SEED}): {dict(outcomes.most_common())}; peak RSS grew {grown_mb:.0f} MB")
    assert sum(outcomes.values()) == CASES and outcomes["decoded"] < CASES
    assert grown_mb < MEMORY_BOUND_MB


MANIFEST_MUTATIONS = {
    "invalid_json": lambda row: "{" + json.dumps(row)[:-3],
    "not_an_object": lambda row: json.dumps([row]),
    "wrong_type_timestamp": lambda row: json.dumps({**row, "timestamp": "noon"}),
    "nan_timestamp": lambda row: json.dumps({**row, "timestamp": float("nan")}),
    "inf_timestamp": lambda row: json.dumps({**row, "timestamp": float("inf")}),
    "wrong_type_color": lambda row: json.dumps({**row, "color": 7}),
    "unknown_camera": lambda row: json.dumps({**row, "camera": "day9/cam9"}),
    "unknown_field": lambda row: json.dumps({**row, "colour": "x.png"}),
    "missing_color": lambda row: json.dumps({k: v for k, v in row.items() if k != "color"}),
}
CALIBRATION_MUTATIONS = {
    "invalid_json": lambda text, cal: text[: len(text) // 2],
    "zero_width": lambda text, cal: _set(cal, ("color", "width"), 0),
    "negative_height": lambda text, cal: _set(cal, ("color", "height"), -480),
    "nan_focal": lambda text, cal: _set(cal, ("color", "fx"), float("nan")),
    "inf_centre": lambda text, cal: _set(cal, ("color", "cx"), float("inf")),
    "string_size": lambda text, cal: _set(cal, ("color", "width"), "640"),
    "no_cameras": lambda text, cal: json.dumps({**cal, "cameras": {}}),
}


def _set(cal: dict, keys: tuple[str, str], value) -> str:
    cal = json.loads(json.dumps(cal))
    camera = next(iter(cal["cameras"].values()))
    camera[keys[0]][keys[1]] = value
    return json.dumps(cal)


def test_corrupted_manifests_and_calibrations_are_refused_naming_the_file(tmp_path):
    rows = [json.loads(line) for line in (SAMPLE / "manifest.jsonl").read_text().splitlines() if line.strip()]
    calibration_text = (SAMPLE / "calibration.json").read_text()
    calibration = json.loads(calibration_text)
    outcomes: Counter = Counter()
    for name, mutate_row in MANIFEST_MUTATIONS.items():
        for line in (0, len(rows) - 1):
            folder = tmp_path / f"m-{name}-{line}"
            folder.mkdir()
            (folder / "calibration.json").write_text(calibration_text)
            lines = [json.dumps(r) for r in rows]
            lines[line] = mutate_row(rows[line])
            (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
            outcomes[_outcome(folder, f"manifest {name}")] += 1
    folder = tmp_path / "m-duplicate"
    folder.mkdir()
    (folder / "calibration.json").write_text(calibration_text)
    (folder / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in [*rows, rows[2]]) + "\n")
    outcomes[_outcome(folder, "manifest duplicate_id")] += 1
    for name, mutate_calibration in CALIBRATION_MUTATIONS.items():
        folder = tmp_path / f"c-{name}"
        folder.mkdir()
        (folder / "calibration.json").write_text(mutate_calibration(calibration_text, calibration))
        (folder / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        outcomes[_outcome(folder, f"calibration {name}")] += 1
    print(f"\ncorrupted manifests and calibrations: {dict(outcomes)}")
    assert outcomes["refused"] >= len(MANIFEST_MUTATIONS) + len(CALIBRATION_MUTATIONS)


def _outcome(folder: Path, case: str) -> str:
    """'refused' (a SourceError or CalibrationError naming the file) or 'listed' (every row taken as given);
    anything else fails the test with the case's name."""
    try:
        source = ManifestSource(folder / "manifest.jsonl")
        refs = source.refs()
        assert all(ref.camera_id in source.calibrations() for ref in refs), case
        return "listed"
    except (SourceError, CalibrationError) as error:
        assert str(folder) in str(error), (case, str(error))
        return "refused"
    except Exception as error:  # noqa: BLE001
        raise AssertionError(f"{case}: {type(error).__name__}: {error}") from error
