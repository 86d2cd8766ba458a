"""Where a grid's runs execute: in this process, in a local process pool, or as Ray tasks.

The grid runner (`grid.run_grid`) decides *which* runs may start (teachers before students,
finished runs skipped); an executor only starts them and reports each as it ends. Every
executor trains a run with `train_one`, which resumes from the run's checkpoint, so a
retried or re-run grid continues where it stopped.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ibkd import losses, metrics, models
from ibkd.batched import train_batched
from ibkd.config import RunConfig
from ibkd.data import suites
from ibkd.errors import IbkdError
from ibkd.train import train_run


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


def train_one(
    cfg: RunConfig, folder: str, threads: int | None, progress: bool,
    report: Callable[[int], None] | None = None,
) -> None:  # fmt: skip
    """One grid run (in this process, a pool worker or a Ray task): `threads` torch threads
    (None: leave as is) and `report(step)` after every optimizer step (e.g. progress for the
    grid's display). Errors other than `IbkdError` leave their traceback in error.txt."""
    checks = [report] if report is not None else []
    if threads is not None:  # a worker: stop if the grid process is killed
        torch.set_num_threads(threads)
        parent = os.getppid()

        def orphaned(step: int) -> None:
            if os.getppid() != parent:
                raise SystemExit(f"{folder}: the grid process has gone; stopping at step {step}")

        checks.append(orphaned)

    def on_step(step: int) -> None:
        for check in checks:
            check(step)

    try:
        train_run(cfg, folder, resume=True, progress=progress, on_step=on_step if checks else None)
    except IbkdError:
        raise
    except Exception as e:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "error.txt").write_text(traceback.format_exc())
        raise RuntimeError(f"{type(e).__name__}: {e}") from None


class GroupErrors(Exception):
    """Some runs of a batched group failed: `errors`, one per run, None for a run that
    finished (the grid settles each run with its own)."""

    def __init__(self, errors: list[BaseException | None]):
        super().__init__(errors)
        self.errors = errors

    def __str__(self) -> str:
        return "; ".join(str(e) for e in self.errors if e is not None)


def train_group(
    cfgs: list[RunConfig], folders: list[str], threads: int | None, progress: bool,
    report: Callable[[int], None] | None = None,
) -> None:  # fmt: skip
    """A batched group of grid runs (`ibkd.batched.train_batched`, resuming each from its
    checkpoint), as `train_one` trains one; raises `GroupErrors` when any run failed. An error
    that stops the whole group (not one run's IbkdError) leaves its traceback in each folder's
    error.txt."""
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        results = train_batched(cfgs, folders, resume=True, on_step=report)
    except IbkdError:
        raise
    except Exception as e:
        for folder in folders:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "error.txt").write_text(traceback.format_exc())
        raise RuntimeError(f"{type(e).__name__}: {e}") from None
    errors = [r if isinstance(r, BaseException) else None for r in results]
    if any(e is not None for e in errors):
        raise GroupErrors(errors)


class Inline:
    """One run at a time in this process (with its own progress bar)."""

    slots = 1

    def __init__(self, progress: bool = True):
        self.progress = progress
        self.queued: dict = {}  # folder (the handle) -> config, or a group's

    def submit(self, cfg: RunConfig, folder: str):
        """Queue one run; its folder is the handle."""
        self.queued[folder] = cfg
        return folder

    def submit_group(self, cfgs: list[RunConfig], folders: list[str]):
        """Queue a batched group (`train_group`); its first folder is the handle."""
        self.queued[folders[0]] = (cfgs, folders)
        return folders[0]

    def wait(self, handles):
        """Train the first handle's run (or group) here, now (train_run shows its own
        progress bar)."""
        folder = handles[0]
        try:
            job = self.queued.pop(folder)
            if isinstance(job, tuple):
                train_group(*job, None, self.progress)
            else:
                train_one(job, folder, None, self.progress)
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
    pool worker or a Ray task starts with the built-in registries only; importing these there
    registers the same extensions again (a module registers what it defines when imported, as
    docs/extending.md shows). A script run as `__main__` is left out: spawn re-runs it in the
    worker as `__mp_main__`."""
    found = [a.build for a in models.architectures().values()]
    found += list(metrics.METRICS.values()) + [loss.fn for loss in losses.LOSSES.values()]
    found += list(suites.READERS.values())
    names = (getattr(f, "__module__", None) or "" for f in found)
    skip = ("", "__main__", "__mp_main__")
    return tuple(dict.fromkeys(n for n in names if n.split(".")[0] != "ibkd" and n not in skip))


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as `CUDA_VISIBLE_DEVICES` names them: its
    entries when it is set (indices, `GPU-<uuid>` or MIG names; empty: none), else `0` to
    `torch.cuda.device_count() - 1`; [] without CUDA."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def pool_gpus(device: str) -> list[str]:
    """The GPUs a pool spreads its workers over for runs on `device`: `visible_gpus` for `auto`
    on a machine with CUDA and for `cuda`; none for another device or a numbered one
    (`cuda:1`: every run on that GPU)."""
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return visible_gpus()
    return []


def gpu_slots(gpus: list[str], workers: int) -> list[str]:
    """The GPU each of a pool's `workers` processes trains on (its `CUDA_VISIBLE_DEVICES`, so
    that it sees that GPU alone, as `cuda:0`): round robin over `gpus`, so that `workers` =
    N x len(gpus) packs N processes on every GPU and fewer spread over as many GPUs as they
    can. ValueError for no GPU."""
    if not gpus:
        raise ValueError("no GPU to place the workers on")
    return [gpus[k % len(gpus)] for k in range(workers)]


def _take_gpu(slots) -> None:
    """In a new pool worker: take the next GPU of the pool's queue `slots` (`gpu_slots`, one
    entry per worker) and see that GPU alone, before anything in this process starts CUDA."""
    import queue

    try:
        os.environ["CUDA_VISIBLE_DEVICES"] = slots.get(timeout=60)
    except queue.Empty:  # more workers than slots: cannot happen with a pool of `workers`
        pass


def import_extensions(modules: tuple[str, ...], paths: tuple[str, ...] = ()) -> None:
    """In a worker (a pool process, a Ray task): import `modules` (`extension_modules` of the
    grid process) so that what they register is known here too. `paths`: the grid process's
    `sys.path`; its entries this process lacks are appended first, so that a module found
    there is found here (the worker's own entries keep precedence)."""
    sys.path.extend(p for p in paths if p not in sys.path)
    for module in modules:
        importlib.import_module(module)


def _worker_start(parent: int, progress, modules: tuple[str, ...] = (), gpus=None) -> None:
    """A pool worker's initializer: exit as soon as the grid process `parent` is gone (killed
    with SIGKILL, it cannot stop its workers), polled by a daemon thread; keep the queue that
    carries each run's step to the grid's progress display; import `modules`
    (`extension_modules` of the grid process) so that what they register is known here too;
    with `gpus` (a queue of `gpu_slots`), train on the GPU taken from it (`_take_gpu`)."""
    import threading
    import time

    global _PROGRESS
    if gpus is not None:
        _take_gpu(gpus)
    _PROGRESS = progress
    import_extensions(modules)  # a spawned worker starts with the grid process's sys.path

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="ibkd-parent-watch", daemon=True).start()


def _pool_task(cfg: RunConfig, folder: str, threads: int) -> None:
    """A pool worker trains one run, first sending ("pid", folder, its process id), then
    (folder, step) at most once a second."""
    import time

    if _PROGRESS is not None:
        _PROGRESS.put(("pid", folder, os.getpid()))
    last = [0.0]

    def report(step: int) -> None:
        now = time.monotonic()
        if _PROGRESS is not None and now - last[0] >= 1.0:
            last[0] = now
            _PROGRESS.put((folder, step))

    train_one(cfg, folder, threads, False, report)


def _pool_group_task(cfgs: list[RunConfig], folders: list[str], threads: int) -> None:
    """A pool worker trains a batched group (`train_group`), reporting as `_pool_task` does
    under the group's first folder."""
    import time

    if _PROGRESS is not None:
        _PROGRESS.put(("pid", folders[0], os.getpid()))
    last = [0.0]

    def report(step: int) -> None:
        now = time.monotonic()
        if _PROGRESS is not None and now - last[0] >= 1.0:
            last[0] = now
            _PROGRESS.put((folders[0], step))

    train_group(cfgs, folders, threads, False, report)


class WorkerDied(RuntimeError):
    """A pool worker died under a run (killed by a signal, such as the OOM killer's SIGKILL, or
    exited abruptly): that run failed; the others go on."""


@dataclass(eq=False)
class _Task:
    """A run given to the pool: its future on the current pool, and how many broken pools it
    was lost to without its own worker being the one that died."""

    cfg: RunConfig
    folder: str
    future: Any = None
    lost: int = 0
    group: tuple[list[RunConfig], list[str]] | None = None  # a batched group's configs, folders


MAX_LOST = 3  # a run lost to this many broken pools (its worker never found dead) fails


class Pool:
    """`workers` processes on this machine, cores / workers torch threads each; with `gpus`
    (`visible_gpus` names), each process sees one of them alone (`gpu_slots`: round robin, so
    N x len(gpus) workers pack N runs on every GPU). Workers exit
    when the grid process dies; each run's step is shown in the grid's progress display
    (`steps`: folder -> last step reported). A worker that dies (SIGKILL from the OOM killer, a
    crash) breaks a `ProcessPoolExecutor`: the run it held fails (`WorkerDied`), the pool is
    replaced by a fresh one and the other runs in flight or queued start again on it (resuming
    from their checkpoints)."""

    def __init__(self, workers: int, gpus: list[str] | None = None):
        import multiprocessing as mp

        self.ctx = mp.get_context("spawn")
        self.slots = workers
        self.gpus = gpu_slots(gpus, workers) if gpus else None
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self.progress = self.ctx.Queue()
        self.steps: dict[str, int] = {}
        self.pids: dict[str, int] = {}  # folder -> the worker process training it
        self.processes: dict[int, Any] = {}  # pid -> multiprocessing.Process, this pool's
        self.tasks: list[_Task] = []
        self.pool = self._new_pool()

    def _new_pool(self):
        from concurrent.futures import ProcessPoolExecutor

        self.processes = {}
        slots = None
        if self.gpus is not None:  # a fresh pool's workers take their GPUs afresh
            slots = self.ctx.Queue()
            for gpu in self.gpus:
                slots.put(gpu)
        return ProcessPoolExecutor(
            self.slots,
            mp_context=self.ctx,
            initializer=_worker_start,
            initargs=(os.getpid(), self.progress, extension_modules(), slots),
        )

    def _start(self, task: _Task) -> None:
        if task.group is not None:
            task.future = self.pool.submit(_pool_group_task, *task.group, self.threads)
        else:
            task.future = self.pool.submit(_pool_task, task.cfg, task.folder, self.threads)
        self.processes.update(getattr(self.pool, "_processes", None) or {})

    def submit(self, cfg: RunConfig, folder: str):
        """Queue one run on the pool; the handle is its task."""
        task = _Task(cfg, folder)
        self.tasks.append(task)
        self._start(task)
        return task

    def submit_group(self, cfgs: list[RunConfig], folders: list[str]):
        """Queue a batched group (`train_group`) on the pool as one task (its handle),
        known by its first folder."""
        task = _Task(cfgs[0], folders[0], group=(cfgs, folders))
        self.tasks.append(task)
        self._start(task)
        return task

    def _take_progress(self) -> None:
        import queue

        while True:
            try:
                message = self.progress.get_nowait()
            except (queue.Empty, OSError, ValueError):
                break
            if len(message) == 3:  # ("pid", folder, pid)
                self.pids[message[1]] = message[2]
            else:
                self.steps[message[0]] = message[1]

    def wait(self, handles):
        """The runs that end within a second (often none), after taking in progress. When the
        pool broke, the run whose worker died is reported failed and the others are started
        again on a fresh pool."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait([t.future for t in handles], timeout=1.0, return_when=FIRST_COMPLETED)
        self.processes.update(getattr(self.pool, "_processes", None) or {})
        self._take_progress()
        by_future = {t.future: t for t in handles}
        ended, broken = [], []
        for f in done:
            error = f.exception()
            if isinstance(error, BrokenProcessPool):
                broken.append(by_future[f])
            else:
                ended.append((by_future[f], error))
        if broken:
            ended += self._recover()
        for task, _ in ended:
            self.tasks.remove(task)
        return ended

    def _recover(self) -> list:
        """After a worker died: wait for the broken pool's workers to be gone, fail the run
        whose worker died, and start the other unfinished runs on a fresh pool."""
        import signal

        self.pool.shutdown(wait=True, cancel_futures=True)
        self._take_progress()
        dead = {pid: p.exitcode for pid, p in self.processes.items() if _died(p.exitcode)}
        self.pool = self._new_pool()
        ended = []
        for task in list(self.tasks):
            if not _broken(task.future):
                continue  # ended before the break: the next `wait` reports it
            pid = self.pids.get(task.folder)
            if pid in dead:
                code = dead[pid]
                how = (f"killed by signal {-code} ({signal.Signals(-code).name}"
                       + (", as the out-of-memory killer does" if -code == signal.SIGKILL
                          else "") + ")"
                       if code < 0 else f"exit status {code}")  # fmt: skip
                ended.append((task, WorkerDied(f"its worker process died: {how}")))
                continue
            task.lost += 1
            if task.lost >= MAX_LOST:
                ended.append((task, WorkerDied(f"lost to {MAX_LOST} broken worker pools")))
                continue
            self.pids.pop(task.folder, None)
            self._start(task)
        return ended

    def abort(self) -> None:
        """Stop now (Ctrl-C, SIGTERM): terminate the workers (a run resumes from its last
        checkpoint next time) and release the pool and its queue."""
        for p in list((getattr(self.pool, "_processes", None) or {}).values()):
            p.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.progress.close()

    def close(self) -> None:
        """Stop the workers once the runs in flight end (queued ones are cancelled)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.progress.close()


def _broken(future) -> bool:
    """Whether a pool's future was lost to its breaking (cancelled, or BrokenProcessPool)."""
    from concurrent.futures.process import BrokenProcessPool

    return future.cancelled() or isinstance(future.exception(), BrokenProcessPool)


def _died(exitcode: int | None) -> bool:
    """Whether a pool worker's exit status shows that it died by itself (a signal such as the
    OOM killer's SIGKILL, a crash), not that the broken pool stopped it (SIGTERM, or the exit
    of a worker that treats SIGTERM or SIGINT as an interrupt) or that it exited cleanly."""
    import signal

    if exitcode is None or exitcode in (0, 1):
        return False
    return exitcode > 1 or -exitcode not in (signal.SIGTERM, signal.SIGINT)


def local(workers: int, progress: bool = True, gpus: list[str] | None = None) -> Executor:
    """In this process for one worker (with the run's own progress bar), else a `Pool` (its
    workers spread over `gpus`, when given)."""
    return Inline(progress) if workers <= 1 else Pool(workers, gpus)


def ray_payload(cfg: RunConfig, folder: str, threads: int | None) -> tuple:
    """The arguments of the Ray task (`ray_task`) that trains `cfg` into `folder` with
    `threads` torch threads: this process's `extension_modules` and `sys.path`, and the config
    as plain data (`RunConfig.to_dict`), so that the task's arguments unpickle in a worker that
    has not imported the modules yet (a registered model's config class is theirs)."""
    return extension_modules(), tuple(sys.path), cfg.to_dict(), folder, threads


def ray_task(
    modules: tuple[str, ...], paths: tuple[str, ...], config: dict, folder: str,
    threads: int | None,
) -> None:  # fmt: skip
    """A Ray task (its arguments: `ray_payload`): import the grid process's extension modules
    (`import_extensions`), then rebuild the run's config (now that what they register is
    known) and train it (`train_one`)."""
    import_extensions(modules, paths)
    train_one(RunConfig.from_dict(config, f"{folder}: config"), folder, threads, False)


class Ray:
    """Every run is a Ray task asking for `cpus_per_run` CPUs and `gpus_per_run` GPUs (a
    fraction shares a GPU); Ray places it. A task that fails is retried once (it resumes from
    its checkpoint), then reported. The grid folder must be on storage every node sees: that is
    checked at start with a task on every node. Each task first imports the modules that
    registered a model, metric, loss or suite format in the grid process (`ray_task`), as a
    pool worker does."""

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
        self.task = ray.remote(ray_task).options(
            num_cpus=cpus_per_run,
            num_gpus=gpus_per_run,
            max_retries=1,
            retry_exceptions=True,
        )
        check_shared_storage(out)

    def submit(self, cfg: RunConfig, folder: str):
        """Start the run as a Ray task; its object ref is the handle."""
        # a GPU task sees only its own GPU(s) as cuda:0; "auto" picks it
        return self.task.remote(*ray_payload(cfg, folder, self.threads))

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
