"""The `labels` commands, one module each (the way Hugging Face datasets lays out its CLI): each has
`register(subparsers)`, which declares its arguments and help, and `run(args) -> int`, its exit code.
`COMMANDS` is their order in `labels --help`; `orpose.pipeline.cli` builds the parser from it."""

COMMANDS = (
    "run",
    "graph",
    "bench",
    "bench_plan",
    "bench_feed",
    "inspect",
    "verify",
    "index",
    "query",
    "show",
    "stats",
    "report",
    "export_rerun",
    "diff",
    "evaluate",
    "synth",
    "check_frames",
    "weights",
    "convert_detectron2",
    "export_coco",
    "train_student",
    "probe",
)
