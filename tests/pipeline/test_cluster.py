"""A real two-node Ray cluster on this machine, started with Ray's own commands, that loses a node and an
actor in the middle of `labels run --address`: every planned frame must end in exactly one committed shard.

Each node is `ray start ... --block` in a session of its own; the test finds a node's processes (GCS,
raylet, agents, the workers its raylet started) as the process tree under that command, kills a node
with SIGKILL on that tree, and stops everything it started by process id at the end.
"""

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from label_store.inspection import verify_run
from label_store.plan import read_plan
from label_store.shard import manifest_entries

pytestmark = pytest.mark.slow  # two Ray nodes and whole labelling runs; CI runs them

ROOT = Path(__file__).parents[2]
RAY = Path(sys.executable).parent / "ray"
FAST = ["thresholds.box_score=0.3", "detector.max_persons=4", "run.batch_size=2", "run.shard_size=2", "device=cpu"]
MODEL_ACTOR = "MapBatches(FusedModelStage)"  # in the process title Ray gives a model actor's worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One `ray start --block` and the processes it started."""

    def __init__(self, arguments: list[str], env: dict, log: Path):
        self.log = log
        self.process = subprocess.Popen(
            [str(RAY), "start", "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", *arguments],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: nothing of it belongs to pytest's
        )

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def model_actors(self) -> list[psutil.Process]:
        found = []
        for process in self.processes():
            try:
                if MODEL_ACTOR in " ".join(process.cmdline()):
                    found.append(process)
            except psutil.Error:
                pass
        return found

    def kill(self) -> None:
        """SIGKILL the whole tree at once: a node that dies, not one that shuts down."""
        for process in self.processes():
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        self.process.wait(timeout=30)


def wait_for(condition, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def cluster(tmp_path):
    """A head node and a worker node, 3 CPUs each (the run's pools need 2: after losing the worker node,
    the head alone can run them), token authentication on with a token of this test's own."""
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PYTHONPATH": str(ROOT),
    }
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "3", "--object-store-memory", str(300 * 2**20)]
    nodes = [Node(["--head", "--port", str(port), "--include-dashboard", "false", *common], env, tmp_path / "head.log")]
    try:
        wait_for(lambda: "Ray runtime started" in nodes[0].log.read_text(), 120, "the head node")
        nodes.append(Node(["--address", address, *common], env, tmp_path / "worker.log"))
        wait_for(
            lambda: (
                subprocess.run(
                    [str(RAY), "status", "--address", address], capture_output=True, text=True, env=env
                ).stdout.count("node_")
                == 2
            ),
            120,
            "the worker node to join",
            poll=2,
        )
        yield address, env, nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.kill()
        # `ray start --head` records its address for later `ray.init()` calls on this machine; the cluster is gone
        from ray._common.utils import get_ray_address_file

        record = Path(get_ray_address_file(None))
        if record.exists() and record.read_text().strip().endswith(f":{port}"):  # the head's own IP, our port
            record.unlink()


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    """24 synthetic frames (12 instants x 2 cameras): 12 shards of 2, about a minute of tiny-teacher work."""
    folder = tmp_path_factory.mktemp("cluster_frames")
    command = [sys.executable, "-m", "pipeline.cli", "synth", "--out", str(folder), "--frames", "12", "--cameras", "2"]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    return folder / "manifest.jsonl"


def start_run(address: str, env: dict, frames: Path, out: Path, weights: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipeline.cli", "run", "--config", "tiny", "--frames", str(frames)]
    command += ["--out", str(out), "--weights-dir", str(weights), "--address", address, "--no-progress", *FAST]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def committed(out: Path) -> int:
    return len(list((out / "manifest").glob("shard-*.json"))) if (out / "manifest").is_dir() else 0


def finish(driver: subprocess.Popen, out: Path) -> tuple[str, str]:
    try:
        stdout, stderr = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, stderr[-3000:]
    counts = Counter(f for entry in manifest_entries(out) for f in entry.frame_ids)
    planned = [f for _, ids in read_plan(out).frame_ids() for f in ids]
    assert len(planned) == 24 and sorted(counts) == sorted(planned)
    assert set(counts.values()) == {1}  # every planned frame in exactly one committed shard
    assert verify_run(out) == []
    print(stdout, stderr, sep="\n")  # the run's summary and any retry line, for `pytest -s`
    return stdout, stderr


def test_a_run_on_two_nodes_completes_exactly_once_after_losing_the_worker_node(
    cluster, frames, tiny_weights, tmp_path
):
    address, env, head, worker = cluster
    out = tmp_path / "run"
    driver = start_run(address, env, frames, out, tiny_weights)
    # the model actors landed on both nodes, and the run is under way
    wait_for(lambda: head.model_actors() and worker.model_actors(), 300, "model actors on both nodes")
    wait_for(lambda: committed(out) >= 1 or driver.poll() is not None, 300, "the first committed shard")
    assert driver.poll() is None and committed(out) < 12, "the run ended before the node could be lost"
    worker.kill()
    assert worker.processes() == [] and head.processes()
    finish(driver, out)  # Ray Data replaces lost actors and re-runs their blocks, or the driver's next attempt does


def test_a_run_completes_exactly_once_after_a_model_actor_is_killed_at_a_random_point(
    cluster, frames, tiny_weights, tmp_path
):
    address, env, head, worker = cluster
    out = tmp_path / "run"
    driver = start_run(address, env, frames, out, tiny_weights)
    wait_for(lambda: head.model_actors() + worker.model_actors(), 300, "a model actor")
    delay = random.Random(os.getpid()).uniform(0.0, 15.0)  # a random point of the models' work
    time.sleep(delay)
    alive = head.model_actors() + worker.model_actors()  # now: Ray Data may have retired an idle actor
    assert alive and driver.poll() is None and committed(out) < 12, f"the run was (nearly) over after {delay:.1f} s"
    victim = alive[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    finish(driver, out)
