"""sim.simulate in shards on a real Dask cluster: a scheduler and two workers, each its own
process on 127.0.0.1; a killed worker; mismatches; bad arguments."""

import json
import socket
import threading
import time

import dask.config
import numpy as np
import pytest
from amaranth import signed

import hwgen
import sim
from sim import ClusterError, SimulationError, pooled_cycles_per_frame
from sim.shards import split_frames

from ..hwgen.graphs import random_inputs, random_mlp
from .loopback import LoopbackCluster
from .test_sim_simulate import SEED, _inputs, flatten_graph


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """A generated MLP, 24 inputs and their single-process simulation."""
    graph = random_mlp(3, sizes=(24, 16, 8, 5), high=(4, 2, 1))
    out = tmp_path_factory.mktemp("sharded")
    meta = hwgen.generate(graph, out / "rtl", folding={"fc1": (4, 6)})
    x = random_inputs(graph, 24, seed=4)
    single = sim.simulate(graph, x, out_dir=out / "single", design=meta, progress=False)
    assert single.ok
    return graph, meta, x, single, out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LoopbackCluster(tmp_path_factory.mktemp("cluster"), workers=2) as running:
        yield running


def _assert_tiles(shards, count):
    assert [s["index"] for s in shards] == list(range(len(shards)))
    assert shards[0]["start"] == 0 and shards[-1]["stop"] == count
    assert all(a["stop"] == b["start"] for a, b in zip(shards, shards[1:]))


def test_shards_on_two_workers_equal_a_single_run(network, cluster):
    graph, meta, x, single, out = network
    result = sim.simulate(graph, x, out_dir=out / "cluster", design=meta,
                          client=cluster.address, shards=4, progress=False)
    assert result.ok and result.complete and result.mismatches == 0
    np.testing.assert_array_equal(result.outputs, single.outputs)
    assert result.outputs_compared == single.outputs_compared == 24 * 5
    # Every shard restarts from reset; without back-pressure each measures the design.
    assert result.cycles_per_frame == single.cycles_per_frame == meta["cycles_per_frame"]
    assert result.frame_latency == single.frame_latency == meta["latency"]
    assert [s["frame_latency"] for s in result.shards] == [meta["latency"]] * 4
    _assert_tiles(result.shards, 24)
    assert [s["stop"] - s["start"] for s in result.shards] == [6, 6, 6, 6]
    assert {s["worker"] for s in result.shards} == set(cluster.worker_addresses)
    assert result.retried_shards == 0 and all(s["attempts"] == 1 for s in result.shards)
    assert result.cycles == sum(s["cycles"] for s in result.shards)
    report = json.loads((out / "cluster" / "sim_report.json").read_text())
    assert report["complete"] is True and report["mismatches"] == 0
    assert len(report["shards"]) == 4 and report["retried_shards"] == 0


@pytest.fixture
def broken(make_design):
    # Lane 1 of a beat is one too high whenever it is 5.
    _, meta = make_design((2, 3), 3, signed(6), out_frame_shape=(6,), addend=0, depth=2,
                          fault=(1, 5))
    return meta


def _faulty_inputs():
    x = _inputs(12)
    x[7, 0, 1] = 5  # shard 3 of 4 (inputs 6..8): flattened output index 1
    x[9, 1, 1] = 5  # shard 4 of 4 (inputs 9..11): flattened output index 4
    return x


def test_a_mismatch_stops_the_run_at_the_first_differing_shard(broken, cluster, tmp_path):
    with pytest.raises(SimulationError) as info:
        sim.simulate(flatten_graph(), _faulty_inputs(), out_dir=tmp_path, design=broken,
                     client=cluster.address, shards=4, seed=SEED, progress=False)
    assert str(info.value) == (
        f"RTL differs from the golden in 1 of 54 output values; first at input 7, output "
        f"index (1,): expected 5, got 6 (simulator icarus, backpressure 0, seed {SEED}, 3 "
        f"shards; inputs 0..8 of 12 compared, the run stopped at the first differing shard)")
    report = json.loads((tmp_path / "sim_report.json").read_text())
    assert report["complete"] is False and report["inputs"] == 9
    assert report["total_inputs"] == 12
    assert report["first_mismatch"] == {"input_index": 7, "output_index": [1], "expected": 5,
                                        "got": 6}


def test_without_check_every_shard_is_compared(broken, cluster, tmp_path):
    result = sim.simulate(flatten_graph(), _faulty_inputs(), out_dir=tmp_path, design=broken,
                          client=cluster.address, shards=4, seed=SEED, check=False,
                          progress=False)
    assert result.complete and result.mismatches == 2
    assert np.argwhere(result.outputs != result.golden).tolist() == [[7, 1], [9, 4]]
    _assert_tiles(result.shards, 12)


def test_a_killed_worker_loses_no_frame(network, tmp_path):
    graph, meta, x, single, out = network
    from distributed import Client

    with LoopbackCluster(tmp_path / "cluster", workers=2) as cluster, \
            Client(cluster.address) as client:
        victim = cluster.worker_address(1)
        killed = threading.Event()

        def kill_when_busy():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if any(str(key).startswith("hwgen-shard-")
                       for key in client.processing().get(victim, ())):
                    time.sleep(1.0)  # well inside the shard's simulator run
                    cluster.kill(1)
                    killed.set()
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=kill_when_busy)
        watcher.start()
        try:
            result = sim.simulate(graph, x, out_dir=tmp_path / "sim", design=meta,
                                  client=client, shards=4, progress=False)
        finally:
            watcher.join()
    assert killed.is_set()
    assert result.ok and result.complete
    np.testing.assert_array_equal(result.outputs, single.outputs)
    _assert_tiles(result.shards, 24)
    assert result.retried_shards >= 1
    assert sum(s["attempts"] for s in result.shards) >= 4 + result.retried_shards
    assert all(s["worker"] != victim for s in result.shards if s["attempts"] > 1)
    assert result.cycles_per_frame == meta["cycles_per_frame"]


def _refused_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(workers=0), ValueError, r"workers must be a positive integer, not 0"),
    (dict(workers=-2), ValueError, r"workers must be a positive integer, not -2"),
    (dict(workers=True), ValueError, r"workers must be a positive integer, not True"),
    (dict(workers=1.5), ValueError, r"workers must be a positive integer, not 1\.5"),
    (dict(workers=2, client="tcp://127.0.0.1:8786"), ValueError,
     r"give workers \(local worker processes\) or client \(a Dask cluster\), not both"),
    (dict(shards=2), ValueError, r"shards needs workers or client"),
    (dict(workers=2, shards=0), ValueError, r"shards must be a positive integer, not 0"),
    (dict(client="nonsense"), ValueError,
     r"cluster address must be \[SCHEME://\]HOST:PORT with a port in 1\.\.65535, not "
     r"'nonsense'"),
    (dict(client="tcp://127.0.0.1:70000"), ValueError, r"with a port in 1\.\.65535"),
    (dict(client="udp://127.0.0.1:8786"), ValueError,
     r"cluster address must use one of the schemes .*, not 'udp'"),
    (dict(client=8786), TypeError,
     r"client must be a distributed\.Client or a scheduler address, not 8786"),
    (dict(client=_refused_address()), ClusterError,
     r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:\d+ \(Connection refused\); "
     r"start one with `dask scheduler` or check the address"),
], ids=["zero", "negative", "bool", "float", "both", "shards-alone", "shards-zero",
        "no-port", "port-range", "scheme", "client-kind", "refused"])
def test_bad_distribution_does_no_work(tmp_path, kwargs, error, message):
    start = time.monotonic()
    with pytest.raises(error, match=message):
        sim.simulate(random_mlp(0), random_inputs(random_mlp(0), 2, seed=0),
                     out_dir=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()  # no RTL, no build, no run
    assert time.monotonic() - start < 5


def test_a_silent_scheduler_times_out_before_any_work(tmp_path):
    # A socket that listens but never answers: a connection is made, no handshake comes.
    with socket.socket() as silent, dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ClusterError, match=rf"cannot reach the Dask scheduler at "
                                               rf"{address} \(no answer within 2 s\)"):
            sim.simulate(random_mlp(0), random_inputs(random_mlp(0), 2, seed=0),
                         out_dir=tmp_path / "out", client=address)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("count, shards, expected", [
    (10, 4, [(0, 2), (2, 5), (5, 7), (7, 10)]),
    (3, 8, [(0, 1), (1, 2), (2, 3)]),
    (1, 1, [(0, 1)]),
    (7, 1, [(0, 7)]),
])
def test_split_frames(count, shards, expected):
    assert split_frames(count, shards) == expected


def test_pooled_cycles_per_frame():
    # Two shards of one design at 16 cycles a frame, from their own resets: exactly 16.
    assert pooled_cycles_per_frame([[79, 95, 111, 127], [79, 95, 111]]) == 16.0
    # Second halves: 40 cycles over 2 intervals and 30 over 1 -> 70 / 3.
    assert pooled_cycles_per_frame([[0, 10, 30, 50], [5, 35]]) == pytest.approx(70 / 3)
    assert pooled_cycles_per_frame([[5], [7]]) is None
