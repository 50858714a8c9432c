"""The `compile` lever (teachers.mm.compiled): torch.compile of a model function, one graph per input shape,
called from several threads at once as the in-process executor's model threads do."""

import threading

import pytest
import torch

from orpose.teachers.mm import compiled


def test_a_disabled_lever_returns_the_function_itself():
    def double(x):
        return 2 * x

    assert compiled(double, False) is double


@pytest.mark.slow
def test_compiled_calls_from_two_threads_give_the_eager_answers():
    """Two threads in dynamo at once failed ("FX to symbolically trace a dynamo-optimized function") before the
    calls were serialized; each shape compiles once and every answer is the eager one."""
    conv = torch.nn.Conv2d(3, 4, 3).eval()

    def forward(x):
        return torch.relu(conv(x)).sum(dim=(2, 3))

    fast = compiled(forward, True)
    inputs = [torch.randn(n, 3, 16 + 8 * (n % 2), 16, generator=torch.Generator().manual_seed(n)) for n in (1, 2, 3, 4)]
    results: dict = {}
    errors: list = []

    def worker(indices):
        try:
            for i in indices:
                with torch.no_grad():
                    results[i] = fast(inputs[i])
        except Exception as error:  # noqa: BLE001 (the test reports it)
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(part,)) for part in ((0, 1, 2, 3), (3, 2, 1, 0))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    with torch.no_grad():
        for i, x in enumerate(inputs):
            torch.testing.assert_close(results[i], forward(x), rtol=1e-4, atol=1e-5)
