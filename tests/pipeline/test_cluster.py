"""A real two-node Ray cluster on this machine, started with Ray's own commands, that loses a node and an
actor in the middle of `labels run --address`: every planned frame must end in exactly one committed shard,
and the model actors of both nodes label frames (the run summary's frames per worker).

The fault never races the run: each model actor labels one batch and then waits at a test-only gate
(`pipeline.executors.TestGate`) until the fault has been injected, so work is certainly left when it comes.

Each node is `ray start ... --block` in a session of its own; the test finds a node's processes (GCS,
raylet, agents, the workers its raylet started) as the process tree under that command, kills a node
with SIGKILL on that tree, and stops everything it started by process id at the end.
"""

import json
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

from orpose.label_store.inspection import verify_run
from orpose.label_store.plan import read_plan
from orpose.label_store.shard import manifest_entries

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
    command = [
        sys.executable,
        "-m",
        "orpose.pipeline.cli",
        "synth",
        "--out",
        str(folder),
        "--frames",
        "12",
        "--cameras",
        "2",
    ]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    return folder / "manifest.jsonl"


def start_run(address: str, env: dict, frames: Path, out: Path, weights: Path, gate: Path) -> subprocess.Popen:
    """`labels run --address` in its own session. Each model actor labels one batch (one shard), then waits
    for `gate` to exist (`pipeline.executors.TestGate`): the fault comes while work is certainly left."""
    command = [sys.executable, "-m", "orpose.pipeline.cli", "run", "--config", "tiny", "--frames", str(frames)]
    command += ["--out", str(out), "--weights-dir", str(weights), "--address", address, "--no-progress"]
    command += ["--summary-json", str(out) + ".json", *FAST]
    env = {**env, "LABELS_TEST_GATE": str(gate), "LABELS_TEST_GATE_AFTER": "1"}
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def committed(out: Path) -> int:
    return len(list((out / "manifest").glob("shard-*.json"))) if (out / "manifest").is_dir() else 0


def finish(driver: subprocess.Popen, out: Path) -> dict:
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
    return json.loads(Path(str(out) + ".json").read_text())


def frames_per_node(summary: dict) -> Counter:
    """Frames labelled by the model actors of each node (the worker names start with the node's id)."""
    nodes = Counter()
    for worker, frames in summary["frames_per_worker"]["models"].items():
        nodes[worker.split(":")[0]] += frames
    return nodes


def test_a_run_on_two_nodes_completes_exactly_once_after_losing_the_worker_node(
    cluster, frames, tiny_weights, tmp_path
):
    address, env, head, worker = cluster
    out, gate = tmp_path / "run", tmp_path / "gate"
    driver = start_run(address, env, frames, out, tiny_weights, gate)
    # both model actors (one per node) labelled their first batch and wait at the gate: 2 of 12 shards
    wait_for(lambda: committed(out) >= 2 or driver.poll() is not None, 300, "a committed shard from each model actor")
    assert head.model_actors() and worker.model_actors(), "the model actors are not on both nodes"
    assert driver.poll() is None and committed(out) == 2
    worker.kill()
    assert worker.processes() == [] and head.processes()
    gate.touch()
    summary = finish(driver, out)  # the driver labels the lost node's shards again
    nodes = frames_per_node(summary)
    print("frames per node:", dict(nodes))
    assert len(nodes) == 2 and min(nodes.values()) >= 2, nodes  # both nodes' actors labelled frames
    assert sum(nodes.values()) == 24


def test_a_run_completes_exactly_once_after_a_model_actor_is_killed_mid_run(cluster, frames, tiny_weights, tmp_path):
    address, env, head, worker = cluster
    out, gate = tmp_path / "run", tmp_path / "gate"
    driver = start_run(address, env, frames, out, tiny_weights, gate)
    wait_for(lambda: committed(out) >= 2 or driver.poll() is not None, 300, "a committed shard from each model actor")
    alive = head.model_actors() + worker.model_actors()
    assert len(alive) == 2 and driver.poll() is None and committed(out) == 2
    victim = random.Random(os.getpid()).choice(alive)  # either node's
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    gate.touch()
    summary = finish(driver, out)
    nodes = frames_per_node(summary)
    print("frames per node:", dict(nodes))
    assert sum(nodes.values()) == 24 and len(nodes) == 2, nodes
