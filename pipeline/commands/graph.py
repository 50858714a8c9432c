"""`labels graph`: print the stage graph."""

from __future__ import annotations

import argparse

from orpose.pipeline.commands.common import add_config, add_overrides


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "graph",
        help="print the stage graph a run executes: stages, resources, columns read and written",
        description="Print the stage graph of `labels run` for a teacher config: each stage in order with its kind "
        "(cpu or model), what the Ray executor reserves for it (actors x CPUs/GPUs, from the config's run.* "
        "fields), and the batch columns it reads, writes and drops (checked when the graph is built); with "
        "fusion.enabled=true, the fuse stage the driver runs on each whole shard. Loads no model.",
        epilog="examples:\n  labels graph --config tiny\n"
        "  labels graph --config paper run.fuse_models=true run.gpus_per_actor=1\n"
        "  labels graph --config tiny fusion.enabled=true",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config(parser, "paper", "teacher name or config file (default paper)")
    add_overrides(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.configs.schema import load_teacher_config, parse_overrides
    from orpose.pipeline.resources import describe_graph
    from orpose.pipeline.run import run_graph

    config = load_teacher_config(args.config, parse_overrides(args.overrides))
    graph = run_graph(config)
    fused = [spec for spec in graph.stages if spec.parts]
    whole = fused and any(part.kind == "cpu" for part in fused[0].parts)
    how = " (every stage in each model actor)" if whole else " (model stages fused into one actor)" if fused else ""
    print(f"stage graph of teacher {config.name} on Ray{how}")
    print("\n".join(describe_graph(graph, config.run)))
    return 0
