"""Training of the tiny teacher on synthetic scenes (mmengine Runner): `python -m orpose.training.tiny --help`."""
