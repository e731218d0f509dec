"""The devstack's worker processes: which CPUs each is pinned to, and the CLI's flags."""

from __future__ import annotations

from audiolift_devstack.__main__ import _parser
from audiolift_devstack.workers import worker_cpus


def test_workers_get_their_own_cpus_round_robin() -> None:
    assert [worker_cpus(i, 1, [0, 1]) for i in range(3)] == [[0], [1], [0]]
    assert worker_cpus(1, 2, [0, 1, 2, 3]) == [2, 3]
    assert worker_cpus(0, 0, [0, 1]) == []  # not pinned


def test_up_takes_workers_and_their_cpus() -> None:
    args = _parser().parse_args(["up", "--workers", "2", "--worker-cpus", "1"])
    assert (args.workers, args.worker_cpus) == (2, 1)
    default = _parser().parse_args(["up"])
    assert (default.workers, default.worker_cpus) == (1, 0)
