"""Where a grid's runs execute: in this process, in a local process pool, or as Ray tasks.

The grid runner (`grid.run_grid`) decides *which* runs may start (teachers before students,
finished runs skipped); an executor only starts them and reports each as it ends. Every
executor trains a run with `grid._train_one`, which resumes from the run's checkpoint, so a
retried or re-run grid continues where it stopped.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Protocol

from ibkd.config import RunConfig
from ibkd.errors import IbkdError


class Executor(Protocol):
    """Starts grid runs and reports each as it ends (see the module's docstring)."""

    slots: int | None  # runs in flight at most (None: every ready run at once)

    def submit(self, cfg: RunConfig, folder: str) -> Any:
        """Start training `cfg` into `folder`; a handle for `wait`."""
        ...

    def wait(self, handles: list) -> list[tuple[Any, BaseException | None]]:
        """(handle, error or None) for the handles that have ended; may return none after a
        short while so that the caller can refresh its progress display."""
        ...

    def close(self) -> None:
        """Release the workers (waiting for runs in flight)."""
        ...


class Inline:
    """One run at a time in this process (with its own progress bar)."""

    slots = 1

    def __init__(self, progress: bool = True):
        self.progress = progress
        self.queued: dict[str, RunConfig] = {}  # folder (the handle) -> config

    def submit(self, cfg: RunConfig, folder: str):
        """Queue one run; its folder is the handle."""
        self.queued[folder] = cfg
        return folder

    def wait(self, handles):
        """Train the first handle's run here, now (train_run shows its own progress bar)."""
        from ibkd.experiments.grid import _train_one

        folder = handles[0]
        try:
            _train_one(self.queued.pop(folder), folder, None, self.progress)
            return [(folder, None)]
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - reported by the grid, which goes on
            return [(folder, e)]

    def close(self) -> None:
        """Nothing to release."""


_PROGRESS = None  # in a pool worker: the queue to the grid process (set by _worker_start)
WATCH_SECONDS = 0.5  # how often a pool worker checks that the grid process is alive


def extension_modules() -> tuple[str, ...]:
    """The importable modules outside ibkd that registered a model (`ibkd.models.register`), a
    metric (`ibkd.metrics.register`), a distillation loss (`ibkd.losses.register`) or a suite
    format (`ibkd.data.suites.register_format`) in this process, in first-seen order. A spawned
    pool worker starts with the built-in registries only; importing these modules there
    registers the same extensions again (a module registers what it defines when imported, as
    docs/extending.md shows). A script run as `__main__` is left out: spawn re-runs it in the
    worker as `__mp_main__`."""
    from ibkd import losses, metrics, models
    from ibkd.data import suites

    found = [a.build for a in models.architectures().values()]
    found += list(metrics.METRICS.values()) + [loss.fn for loss in losses.LOSSES.values()]
    found += list(suites.READERS.values())
    names = (getattr(f, "__module__", None) or "" for f in found)
    skip = ("", "__main__", "__mp_main__")
    return tuple(dict.fromkeys(n for n in names if n.split(".")[0] != "ibkd" and n not in skip))


def _worker_start(parent: int, progress, modules: tuple[str, ...] = ()) -> None:
    """A pool worker's initializer: exit as soon as the grid process `parent` is gone (killed
    with SIGKILL, it cannot stop its workers), polled by a daemon thread; keep the queue that
    carries each run's step to the grid's progress display; import `modules`
    (`extension_modules` of the grid process) so that what they register is known here too."""
    import importlib
    import threading
    import time

    global _PROGRESS
    _PROGRESS = progress
    for module in modules:
        importlib.import_module(module)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="ibkd-parent-watch", daemon=True).start()


def _pool_task(cfg: RunConfig, folder: str, threads: int) -> None:
    """A pool worker trains one run, sending (folder, step) at most once a second."""
    import time

    from ibkd.experiments.grid import _train_one

    last = [0.0]

    def report(step: int) -> None:
        now = time.monotonic()
        if _PROGRESS is not None and now - last[0] >= 1.0:
            last[0] = now
            _PROGRESS.put((folder, step))

    _train_one(cfg, folder, threads, False, report)


class Pool:
    """`workers` processes on this machine, cores / workers torch threads each. Workers exit
    when the grid process dies; each run's step is shown in the grid's progress display
    (`steps`: folder -> last step reported)."""

    def __init__(self, workers: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")
        self.slots = workers
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self.progress = ctx.Queue()
        self.steps: dict[str, int] = {}
        self.pool = ProcessPoolExecutor(
            workers,
            mp_context=ctx,
            initializer=_worker_start,
            initargs=(os.getpid(), self.progress, extension_modules()),
        )

    def submit(self, cfg: RunConfig, folder: str):
        """Queue one run on the pool; its future is the handle."""
        return self.pool.submit(_pool_task, cfg, folder, self.threads)

    def wait(self, handles):
        """The runs that end within a second (often none), after taking in progress."""
        import queue
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(handles, timeout=1.0, return_when=FIRST_COMPLETED)
        while True:
            try:
                folder, step = self.progress.get_nowait()
            except (queue.Empty, OSError, ValueError):
                break
            self.steps[folder] = step
        return [(f, f.exception()) for f in done]

    def close(self) -> None:
        """Stop the workers once the runs in flight end (queued ones are cancelled)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.progress.close()


def local(workers: int, progress: bool = True) -> Executor:
    """In this process for one worker (with the run's own progress bar), else a `Pool`."""
    return Inline(progress) if workers <= 1 else Pool(workers)


class Ray:
    """Every run is a Ray task asking for `cpus_per_run` CPUs and `gpus_per_run` GPUs (a
    fraction shares a GPU); Ray places it. A task that fails is retried once (it resumes from
    its checkpoint), then reported. The grid folder must be on storage every node sees: that is
    checked at start with a task on every node."""

    slots = None

    def __init__(
        self,
        out: Path,
        address: str | None = None,
        cpus_per_run: float = 1,
        gpus_per_run: float = 0,
    ):
        try:
            import ray
        except ImportError:
            raise IbkdError(
                "--executor ray: Ray is not installed (pip install 'ibkd[ray]')"
            ) from None
        self.ray = ray
        if not ray.is_initialized():
            # the workers see this machine's IBKD_* settings (data folders, cache)
            env = {k: v for k, v in os.environ.items() if k.startswith("IBKD_")}
            ray.init(
                address=address,
                runtime_env={"env_vars": env} if env else None,
                log_to_driver=False,
            )
        self.threads = max(1, int(cpus_per_run))
        from ibkd.experiments.grid import _train_one

        self.task = ray.remote(_train_one).options(
            num_cpus=cpus_per_run,
            num_gpus=gpus_per_run,
            max_retries=1,
            retry_exceptions=True,
        )
        check_shared_storage(out)

    def submit(self, cfg: RunConfig, folder: str):
        """Start the run as a Ray task; its object ref is the handle."""
        # a GPU task sees only its own GPU(s) as cuda:0; "auto" picks it
        return self.task.remote(cfg, folder, self.threads, False)

    def wait(self, handles):
        """Block until one task ends; its error is the task's own exception when it has one."""
        done, _ = self.ray.wait(handles, num_returns=1)
        ended = []
        for ref in done:
            try:
                self.ray.get(ref)
                ended.append((ref, None))
            except self.ray.exceptions.RayTaskError as e:
                ended.append((ref, e.cause if e.cause is not None else e))
            except self.ray.exceptions.RayError as e:  # a lost worker or node, after retries
                ended.append((ref, e))
        return ended

    def close(self) -> None:
        """Nothing: the cluster belongs to whoever started it."""


def _sees(path: str, token: str) -> tuple[str, bool]:
    import socket

    try:
        return socket.gethostname(), Path(path).read_text() == token
    except OSError:
        return socket.gethostname(), False


def check_shared_storage(out: Path) -> None:
    """Fail unless every alive Ray node reads the same file under `out` as this process."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    out = Path(out).absolute()  # the path every node must see
    out.mkdir(parents=True, exist_ok=True)
    probe = out / f".storage-check-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    probe.write_text(token)
    try:
        sees = ray.remote(_sees)
        refs = [
            sees.options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            ).remote(str(probe), token)
            for n in ray.nodes()
            if n["Alive"]
        ]
        blind = [host for host, ok in ray.get(refs) if not ok]
    finally:
        probe.unlink(missing_ok=True)
    if blind:
        raise IbkdError(
            f"--out {out}: Ray nodes {', '.join(blind)} do not see this folder; with "
            "--executor ray the grid folder must be on storage every node mounts at the same "
            "path (NFS, a shared disk), since each run writes there and students read their "
            "teacher's run"
        )
