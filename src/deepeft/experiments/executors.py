"""Where tasks run: in-process (default), a Dask LocalCluster (``--workers N``), or an existing
Dask cluster (``--scheduler tcp://host:port``). The driver always writes the results, so workers
need no access to the output folder; results are identical on all three (seeds depend only on
the task index)."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator

from ..errors import DeepEFTInputError
from .seeds import TaskContext
from .store import normalize_result

__all__ = ["InProcess", "DaskExecutor", "open_executor", "TaskFailed", "ClusterUnavailable", "run_task"]

TEST_DELAY_ENV = "DEEPEFT_TASK_DELAY"  # test hook: seconds each task sleeps before returning


class TaskFailed(RuntimeError):
    """A task's compute function raised; finished tasks are already stored."""

    def __init__(self, experiment: str, index: int, task: dict, cause: BaseException):
        self.experiment, self.index, self.task, self.cause = experiment, index, task, cause
        super().__init__(
            f"{experiment}: task {index} {task} failed with {type(cause).__name__}: {cause}. "
            "Finished tasks are saved; fix the cause and rerun the same command with --resume."
        )


class ClusterUnavailable(RuntimeError):
    """The Dask scheduler could not be reached or a LocalCluster could not start."""


def run_task(exp, params, index: int, task: dict, delay: float = 0.0):
    """Compute one task (runs wherever the executor puts it). Returns (index, result, seconds)."""
    t0 = time.perf_counter()
    old = os.environ.get("DEEPEFT_PROGRESS")
    os.environ["DEEPEFT_PROGRESS"] = "0"  # no tqdm bars from sample_ensemble inside tasks (the CLI shows its own)
    try:
        result = normalize_result(exp.compute(params, task, TaskContext(index, params.seed)))
    finally:
        if old is None:
            os.environ.pop("DEEPEFT_PROGRESS", None)
        else:
            os.environ["DEEPEFT_PROGRESS"] = old
    if delay:
        time.sleep(delay)
    return index, result, time.perf_counter() - t0


def _delay() -> float:
    try:
        return float(os.environ.get(TEST_DELAY_ENV, "0") or 0)
    except ValueError:
        return 0.0


class InProcess:
    """Run tasks one after the other in this process (JAX/NumPy use the machine's cores)."""

    description = "in-process"

    def map(self, exp, params, items: list[tuple[int, dict]]) -> Iterator[tuple[int, dict, float]]:
        delay = _delay()
        for index, task in items:
            try:
                yield run_task(exp, params, index, task, delay)
            except Exception as exc:  # noqa: BLE001 - wrapped with the task's identity
                raise TaskFailed(exp.name, index, task, exc) from exc


class DaskExecutor:
    """Submit tasks to a ``distributed.Client``; yield results as they complete."""

    def __init__(self, client, description: str):
        self.client = client
        self.description = description

    def map(self, exp, params, items: list[tuple[int, dict]]) -> Iterator[tuple[int, dict, float]]:
        from distributed import as_completed

        delay = _delay()
        stamp = f"{exp.name}-{os.getpid()}-{time.time_ns()}"
        futures = {
            self.client.submit(run_task, exp, params, index, task, delay, key=f"{stamp}-{index}", pure=False): (
                index,
                task,
            )
            for index, task in items
        }
        try:
            for fut in as_completed(list(futures)):
                index, task = futures[fut]
                try:
                    out = fut.result()
                except Exception as exc:  # noqa: BLE001
                    raise TaskFailed(exp.name, index, task, exc) from exc
                fut.release()
                yield out
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending)


def dask_setup(worker) -> None:
    """Dask preload hook of the ``--workers`` LocalCluster: a worker process ignores SIGINT. Ctrl-C reaches
    the whole process group, and only the driver should act on it (it cancels the tasks and closes the
    cluster) instead of every worker dying with a KeyboardInterrupt traceback."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


DEFAULT_CONNECT_TIMEOUT_S = 10.0  # how long --scheduler waits for the scheduler to answer
_ADDRESS = re.compile(r"^(?:(tcp|tls|ws|wss|ucx)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def check_scheduler_address(address: str) -> str:
    """``address`` if it looks like a Dask scheduler address (``[tcp://]host:port``), else ClusterUnavailable."""
    m = _ADDRESS.match(address.strip())
    if not m or not 0 < int(m.group(3)) < 65536:
        raise ClusterUnavailable(
            f"--scheduler {address!r} is not a Dask scheduler address; give the one the scheduler printed, "
            "like tcp://host:8786 (scheme tcp, tls, ws, wss or ucx; port 1-65535)."
        )
    return address.strip()


@contextlib.contextmanager
def open_executor(scheduler: str | None = None, workers: int | None = None,
                  connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S):
    """Context manager yielding an executor: Dask client at ``scheduler`` (waiting at most
    ``connect_timeout`` seconds for it), a LocalCluster with ``workers`` processes (1 thread each),
    or in-process when both are None."""
    if scheduler and workers:
        raise DeepEFTInputError("pass either --scheduler ADDRESS (existing cluster) or --workers N (local), not both.")
    if not scheduler and not workers:
        yield InProcess()
        return
    from distributed import Client, LocalCluster

    if scheduler:
        address = check_scheduler_address(scheduler)
        if not connect_timeout > 0:
            raise DeepEFTInputError(f"the scheduler connect timeout must be > 0 seconds, got {connect_timeout}.")
        try:
            client = Client(address, timeout=f"{connect_timeout}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterUnavailable(
                f"could not connect to the Dask scheduler at {scheduler!r} within {connect_timeout:g} s "
                f"({type(exc).__name__}). Check the address the scheduler printed (tcp://host:port) and that this "
                "machine can reach it, raise --scheduler-timeout, or use --workers N for a local cluster."
            ) from None
        with client:
            yield DaskExecutor(client, f"Dask scheduler {scheduler}")
        return
    assert workers is not None  # not both None: checked above
    if workers < 1:
        raise DeepEFTInputError(f"--workers must be >= 1, got {workers}.")
    try:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40,
            preload=[__name__],  # dask_setup above: workers leave Ctrl-C to the driver
        )
    except Exception as exc:  # noqa: BLE001
        raise ClusterUnavailable(f"could not start a Dask LocalCluster with {workers} workers: {exc}") from exc
    with cluster, Client(cluster) as client:
        yield DaskExecutor(client, f"Dask LocalCluster ({workers} workers × 1 thread)")
