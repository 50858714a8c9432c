"""Out-of-memory back-off of the model stages: halve the batch, keep the order, give up at one item."""

import pytest

from orpose.stages._batching import is_out_of_memory, with_oom_backoff


def test_an_out_of_memory_batch_is_halved_until_it_fits_and_keeps_its_order():
    calls = []

    def run(items):
        calls.append(list(items))
        if len(items) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [item * 10 for item in items]

    assert with_oom_backoff(run, [1, 2, 3, 4, 5], "detect") == [10, 20, 30, 40, 50]
    assert calls == [[1, 2, 3, 4, 5], [1, 2], [3, 4, 5], [3], [4, 5]]


def test_other_errors_and_a_single_item_out_of_memory_are_raised():
    def broken(items):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        with_oom_backoff(broken, [1, 2, 3])

    def always_out_of_memory(items):
        raise MemoryError("can't allocate memory")

    with pytest.raises(MemoryError):
        with_oom_backoff(always_out_of_memory, [1, 2])
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB"))
    assert not is_out_of_memory(ValueError("out of memory"))  # only the errors torch raises for it
