"""`labels bench-feed` on the trained sample run: every loader reads the items asked for, each ratio to the
limit is taken within a turn and the medians are printed with the turns' ratios."""

import re

from orpose.pipeline.feed_bench import bench_feed


def test_bench_feed_prints_each_loader_against_the_limit_turn_by_turn(trained_sample_run):
    lines = bench_feed(trained_sample_run, workers=0, items=6, factor=8, repeats=2)
    text = "\n".join(lines)
    for name in ("limit", "stream", "map"):
        row = next(line for line in lines if line.startswith(f"{name:7} |"))
        assert "(6 items)" in row or "(7 items)" in row or "(8 items)" in row, row
    assert re.search(r"limit   \| .* \|         1\.00 \|", text), text
    turns = next(line for line in lines if line.startswith("  stream of the limit, turn by turn: "))
    assert len(re.findall(r"\d+\.\d\d", turns)) == 2, turns
    assert "shuffle : consecutive items of one worker from the same shard" in text
