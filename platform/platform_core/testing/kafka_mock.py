"""librdkafka's built-in mock Kafka cluster, with its fault-injection API.

confluent-kafka does not bind the mock API, so this reaches it through ctypes in the
librdkafka that ships inside the confluent-kafka wheel. The cluster speaks the real Kafka
protocol on loopback TCP ports; producers, consumer groups, commits and transactions work.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import confluent_kafka

_RD_KAFKA_PRODUCER = 0
PRODUCE_API_KEY = 0
# Kafka protocol error codes a producer retries (the broker's answer, not a lost connection).
NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7


def _library() -> ctypes.CDLL:
    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    candidates = sorted(libs.glob("librdkafka*.so*"))
    if not candidates:
        raise RuntimeError(f"no librdkafka found in {libs}")
    lib = ctypes.CDLL(str(candidates[0]))
    p, i, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    signatures = {
        "rd_kafka_conf_new": ([], p),
        "rd_kafka_new": ([i, p, s, ctypes.c_size_t], p),
        "rd_kafka_destroy": ([p], None),
        "rd_kafka_mock_cluster_new": ([p, i], p),
        "rd_kafka_mock_cluster_destroy": ([p], None),
        "rd_kafka_mock_cluster_bootstraps": ([p], s),
        "rd_kafka_mock_broker_set_down": ([p, ctypes.c_int32], i),
        "rd_kafka_mock_broker_set_up": ([p, ctypes.c_int32], i),
        "rd_kafka_mock_topic_create": ([p, s, i, i], i),
        "rd_kafka_mock_group_initial_rebalance_delay_ms": ([p, ctypes.c_int32], None),
        "rd_kafka_mock_push_request_errors_array": (
            [p, ctypes.c_int16, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)],
            None,
        ),
        "rd_kafka_mock_start_request_tracking": ([p], None),
        "rd_kafka_mock_get_requests": ([p, ctypes.POINTER(ctypes.c_size_t)], ctypes.POINTER(p)),
        "rd_kafka_mock_request_api_key": ([p], ctypes.c_int16),
        "rd_kafka_mock_request_destroy_array": ([ctypes.POINTER(p), ctypes.c_size_t], None),
    }
    for name, (argtypes, restype) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, restype
    return lib


class MockKafkaCluster:
    """A mock cluster of `brokers` brokers (ids 1..n) that tests can take down and up."""

    def __init__(self, brokers: int = 1) -> None:
        self._lib = _library()
        errstr = ctypes.create_string_buffer(512)
        self._handle = self._lib.rd_kafka_new(
            _RD_KAFKA_PRODUCER, self._lib.rd_kafka_conf_new(), errstr, len(errstr)
        )
        if not self._handle:
            raise RuntimeError(f"rd_kafka_new failed: {errstr.value.decode()}")
        self._cluster = self._lib.rd_kafka_mock_cluster_new(self._handle, brokers)
        if not self._cluster:
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        self.brokers = brokers
        # A real broker waits 3 s for more members before the first rebalance; tests need not.
        self._lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._cluster, 0)
        self.bootstrap_servers: str = self._lib.rd_kafka_mock_cluster_bootstraps(
            self._cluster
        ).decode()

    def create_topic(self, name: str, partitions: int = 1) -> None:
        error = self._lib.rd_kafka_mock_topic_create(
            self._cluster, name.encode(), partitions, min(self.brokers, 3)
        )
        if error:
            raise RuntimeError(f"creating topic {name} failed: error {error}")

    def take_down(self, broker_id: int | None = None) -> None:
        """Disconnect a broker (all when None) and refuse new connections to it."""
        for broker in self._ids(broker_id):
            self._lib.rd_kafka_mock_broker_set_down(self._cluster, broker)

    def bring_up(self, broker_id: int | None = None) -> None:
        for broker in self._ids(broker_id):
            self._lib.rd_kafka_mock_broker_set_up(self._cluster, broker)

    def fail_produce_requests(self, errors: list[int]) -> None:
        """Answer the next len(errors) Produce requests with these error codes, in order,
        and count Produce requests from now on (`produce_requests`)."""
        self._lib.rd_kafka_mock_start_request_tracking(self._cluster)
        codes = (ctypes.c_int * len(errors))(*errors)
        self._lib.rd_kafka_mock_push_request_errors_array(
            self._cluster, PRODUCE_API_KEY, len(errors), codes
        )

    def produce_requests(self) -> int:
        """Produce requests received since `fail_produce_requests` (the first ones were
        answered with its errors: more requests than errors proves they were all met)."""
        count = ctypes.c_size_t(0)
        requests = self._lib.rd_kafka_mock_get_requests(self._cluster, ctypes.byref(count))
        try:
            return sum(
                self._lib.rd_kafka_mock_request_api_key(requests[i]) == PRODUCE_API_KEY
                for i in range(count.value)
            )
        finally:
            if requests:
                self._lib.rd_kafka_mock_request_destroy_array(requests, count.value)

    def _ids(self, broker_id: int | None) -> range:
        return range(1, self.brokers + 1) if broker_id is None else range(broker_id, broker_id + 1)

    def close(self) -> None:
        if self._cluster:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._cluster = None
        if self._handle:
            self._lib.rd_kafka_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> MockKafkaCluster:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class MockKafkaProcess:
    """A one-broker mock cluster in a child process (`python -m
    platform_core.testing.kafka_mock`), for deployments whose processes outlive the
    test's own: it answers until `close`. Topics are created before anyone subscribes
    (the mock's CreateTopics call times out); `take_down`/`bring_up` inject a broker
    outage, `fail_produce_requests` broker errors."""

    def __init__(self, topics: Mapping[str, int] | None = None, log: Path | None = None) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "platform_core.testing.kafka_mock"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("ab") if log is not None else subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        self.pid = self._process.pid
        self.bootstrap_servers = self._stdout.readline().strip()
        if not self.bootstrap_servers:
            raise RuntimeError("the mock Kafka cluster did not start")
        for name, partitions in (topics or {}).items():
            self.create_topic(name, partitions)

    def create_topic(self, name: str, partitions: int = 1) -> str:
        self._ask(f"topic {name} {partitions}")
        return name

    def take_down(self) -> None:
        self._ask("down")

    def bring_up(self) -> None:
        self._ask("up")

    def fail_produce_requests(self, errors: list[int]) -> None:
        self._ask("fail-produce " + " ".join(map(str, errors)))

    def produce_requests(self) -> int:
        return int(self._ask("produce-requests"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self._process.wait(timeout=5)

    def _ask(self, line: str) -> str:
        """Send one command; what follows the child's `ok`."""
        self._stdin.write(line + "\n")
        self._stdin.flush()
        answer = self._stdout.readline().split(maxsplit=1)
        if not answer or answer[0] != "ok":
            raise RuntimeError(f"the mock Kafka cluster refused {line!r}: {answer}")
        return answer[1].strip() if len(answer) > 1 else ""


def serve() -> None:
    """The child process of MockKafkaProcess: prints the bootstrap servers, then answers
    `topic NAME PARTITIONS`, `down`, `up`, `fail-produce CODE...` with `ok` and
    `produce-requests` with `ok N`, until stdin closes."""
    with MockKafkaCluster(brokers=1) as cluster:
        print(cluster.bootstrap_servers, flush=True)
        for line in sys.stdin:
            match line.split():
                case ["topic", name, partitions]:
                    cluster.create_topic(name, int(partitions))
                case ["down"]:
                    cluster.take_down()
                case ["up"]:
                    cluster.bring_up()
                case ["fail-produce", *codes]:
                    cluster.fail_produce_requests([int(code) for code in codes])
                case ["produce-requests"]:
                    print(f"ok {cluster.produce_requests()}", flush=True)
                    continue
                case _:
                    print(f"unknown: {line.strip()}", flush=True)
                    continue
            print("ok", flush=True)


if __name__ == "__main__":
    serve()
