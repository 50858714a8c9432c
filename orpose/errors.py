"""One base for the errors this project raises on purpose (Ray keeps its own under `ray.exceptions`).

An `OrPoseError`'s message is written for the person at the terminal: it names the file, the field or
the frame and what to do. `labels` prints it on one line, without a traceback, and exits with the
class's `exit_code` (`orpose.pipeline.cli.main` is the one place that does this):

- 2: what was given is wrong (a config field, a frame source, a calibration file, a missing optional
  package): fix the command line or the input and run again;
- 1: the work could not be done (weights missing, a run locked or of another config, a full disk,
  too many rejected frames, a checkpoint that does not convert).

Each subclass also keeps the builtin base it always had (`ConfigError` is a `ValueError`,
`WeightsMissingError` a `FileNotFoundError`, ...), so code that caught those still does.
"""

__all__ = ["OrPoseError", "USAGE", "FAILED"]

USAGE = 2
FAILED = 1


class OrPoseError(Exception):
    """Base of the project's own errors; `exit_code` is what `labels` returns for it."""

    exit_code: int = FAILED
