"""`labels bench-feed`: the loaders are read interleaved, turn by turn, every loader reads the items asked
for, and each ratio to the limit is printed with its spread over the turns."""

import re

from orpose.pipeline.feed_bench import bench_feed, measure_interleaved


class _Logged:
    """An iterable of `count` items that logs each item it yields under its name."""

    def __init__(self, name: str, count: int, log: list):
        self.name, self.count, self.log = name, count, log

    def __iter__(self):
        for _ in range(self.count):
            self.log.append(self.name)
            yield 0


def test_loaders_are_read_in_turns_after_each_one_started():
    log = []
    figures, ratios = measure_interleaved(
        {"limit": _Logged("limit", 100, log), "stream": _Logged("stream", 100, log)}, items=6, segment=2
    )
    # the first item of each (time to the first batch), then turns of two: limit, stream, limit, ...
    assert log == ["limit", "stream"] + ["limit", "limit", "stream", "stream"] * 3
    assert [f.items for f in figures] == [7, 7]  # the first item and the six measured ones
    assert len(ratios["stream"]) == 3 and "limit" not in ratios


def test_a_loader_that_ends_early_stops_and_the_others_go_on():
    log = []
    figures, ratios = measure_interleaved(
        {"limit": _Logged("limit", 100, log), "map": _Logged("map", 3, log)}, items=6, segment=2
    )
    assert [f.items for f in figures] == [7, 3]
    assert log.count("limit") == 7 and log.count("map") == 3
    assert len(ratios["map"]) == 1  # one full turn (two items) before its epoch ended


def test_bench_feed_prints_each_loader_against_the_limit_with_its_spread(trained_sample_run):
    lines = bench_feed(trained_sample_run, workers=0, items=6, factor=8, turn_batches=2)
    text = "\n".join(lines)
    assert "in turns of 2" in text
    for name in ("minimal", "limit", "stream", "map"):
        row = next(line for line in lines if line.startswith(f"{name:7} |"))
        assert "(7 items)" in row, row  # the first batch and three turns of two
        if name != "minimal":
            assert re.search(r"\| +\d+\.\d\d-\d+\.\d\d \|", row), row  # the quartiles of its turns' ratios to minimal
    assert "| of minimal | turn by turn" in text
    assert re.search(r"minimal \| [^|]*\| +1\.00 \|", text), text  # the first loader against itself
    assert re.search(r"limit   \| [^|]*\| +\d\.\d\d \| +\d\.\d\d-\d\.\d\d \| +1\.00 \|", text), text
    assert "shuffle : consecutive items of one worker from the same shard" in text


def test_the_minimal_loader_makes_the_limit_s_image_in_opencv_s_channel_order(trained_sample_run):
    import numpy as np

    from orpose.label_store.stream import PoseLabelStream
    from orpose.pipeline.feed_bench import DecodeOnly, MinimalDecode, _paths

    stream = PoseLabelStream(trained_sample_run, factor=8)
    positions = np.flatnonzero(stream.eligible)[:2]
    paths = _paths(stream.source, positions, "color")
    for i in range(2):
        limit = DecodeOnly(paths, positions, "color", 8, 0)[i]
        minimal = MinimalDecode(paths, positions, "color", 8, 0)[i]
        assert minimal.shape == limit.shape and minimal.dtype == limit.dtype
        assert (minimal.flip(0) - limit).abs().max() <= 1e-3  # BGR against RGB, the same pixels
