"""``segexplorer batch --engine ray``: the same per-image function in a Ray Data actor pool.

Each actor loads the model once (``num_gpus=1`` per actor when the device is CUDA) and
runs the local engine's pipeline (``pipeline.py``) on the images Ray Data streams to it:
a thread decodes the next images of its batch, the model explains one after the other,
writer threads render and encode each explained image's files (in memory: the bytes
``explain`` would write) while the model goes on. The actor returns those bytes with the
summary rows; the driver (this process) alone writes them into the output folder and
appends the journal, exactly as the local engine does. So:

* the outputs are the same files in the same layout, resumable the same way (a run
  started locally can be finished on Ray, and the other way round);
* only the driver needs the output folder; every node needs the input images at the
  same path (a shared file system, as clusters have) and segexplorer installed.

Ray itself is an optional install (``pip install 'segexplorer[ray]'``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..engine.errors import UserError
from ..engine.jobs import JobState, check_cancelled
from .inputs import BatchItem
from .options import BatchOptions, default_writers
from .pipeline import WritePool, groups, prefetched
from .writer import BatchWriter

if TYPE_CHECKING:
    from ..engine.analysis import ExplainRequest
    from .analyse import Analysed

CPUS_PER_ACTOR = 4  # the default actor count on CPUs: one per this many CPUs
# images handed to an actor at a time: decoded ahead and written behind within the batch.
# Ray Data calls an actor with one batch after the other, so the pipeline is drained at
# the end of each: the model waits for the last images' files once per batch (on a GPU,
# about one image's writing per 16 images explained), the price of Ray Data's own
# scheduling, which spreads the batches over the actors
BATCH_SIZE = 16


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'segexplorer[ray]' (or "
                        "'ray[data]'), or use the local engine.") from None
    return ray


class RayExplainer:
    """The actor: one model, images in, encoded outcomes out (one row per image)."""

    def __init__(self, request: ExplainRequest, threads: int | None, prefetch: int,
                 outputs: str, writers: int, images_per_pass: int | None = None) -> None:
        import torch

        from .analyse import ImageAnalyser, model_info

        self.threads = threads
        if threads:
            torch.set_num_threads(threads)
        self.prefetch = prefetch
        self.writers = writers
        self.fatal: str | None = None
        try:
            self.analyser = ImageAnalyser(request, outputs=outputs,
                                          images_per_pass=images_per_pass)
        except UserError as exc:  # told to the driver with the first batch, in one line
            self.fatal = exc.message
            return
        self.info = model_info(self.analyser.model)

    def __call__(self, batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if self.fatal is not None:
            yield _row({"fatal": self.fatal}, [])
            return
        items = [BatchItem(str(k), str(p)) for k, p in zip(batch["key"], batch["path"])]
        done: list[dict[str, Any]] = []
        with WritePool(self._encode, done.append, self.writers) as pool:
            most = self.analyser.images_per_pass
            decoded = prefetched(items, self.analyser.prepare, max(self.prefetch, most))
            for group in groups(decoded, most):
                if self.threads:  # torch's thread count is per thread, and Ray may resume
                    import torch  # this generator on another one

                    torch.set_num_threads(self.threads)
                for analysed in self.analyser.analyse_group(group):
                    pool.submit(analysed)
                yield from _take(done)
        yield from _take(done)

    def _encode(self, analysed: Analysed) -> dict[str, Any]:
        """A writer thread: the image's files, encoded, and its outcome, as one row."""
        files = list(self.analyser.files(analysed))
        return _row({"entry": analysed.outcome.journal_entry(), "info": self.info}, files)


def _take(done: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    while done:
        yield done.pop(0)


def _row(meta: dict[str, Any], files: list[tuple[str, bytes]]) -> dict[str, Any]:
    """One image's outcome as a Ray Data row: JSON for what it says, the files' bytes
    end to end in one binary column (no pickle: the driver reads only data)."""
    meta = dict(meta, files=[(name, len(data)) for name, data in files])
    return {"meta": [json.dumps(meta)], "blob": [b"".join(data for _, data in files)]}


def _unpack(row: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    meta = json.loads(row["meta"])
    blob = bytes(row["blob"])
    files, start = [], 0
    for name, size in meta.pop("files"):
        files.append((str(name), blob[start:start + size]))
        start += size
    return meta, files


def check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """A HOST:PORT that nothing answers on is refused at once (Ray would retry for
    minutes before giving up)."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address '{address}' is not auto or HOST:PORT (e.g. "
                        "10.0.0.5:6379, the head node's 'ray start --head' port).")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserError(f"No Ray cluster answers at {address} ({exc.strerror or exc}): start "
                        "one with 'ray start --head' on that machine, or check --address.") \
            from None


def _cluster_resources(ray: Any) -> tuple[float, float]:
    resources = ray.cluster_resources()
    return float(resources.get("CPU", 1.0)), float(resources.get("GPU", 0.0))


def run_ray(options: BatchOptions, pending: list[BatchItem], writer: BatchWriter,
            begin: Callable[[dict[str, Any] | None], None],
            loaded: Callable[[dict[str, Any]], None],
            finished: Callable[[dict[str, Any]], None], state: JobState | None) -> None:
    ray = import_ray()
    quiet = not os.environ.get("SEGEXPLORER_DEBUG")
    if quiet:  # Ray's and Ray Data's INFO and WARNING lines would bury the batch's own
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    started_here = not ray.is_initialized()
    if started_here:
        check_reachable(options.address)
        try:
            ray.init(address=options.address, include_dashboard=False,
                     logging_level=logging.ERROR if quiet else logging.INFO,
                     log_to_driver=not quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = options.address or "this machine"
            raise UserError(f"Ray could not start or join a cluster at {where} "
                            f"({str(exc).splitlines()[0][:160]}): check --address, or start "
                            "one with 'ray start --head'.") from None
    try:
        _run(ray, options, pending, writer, begin, loaded, finished, state)
    finally:
        if started_here:
            ray.shutdown()


def _run(ray: Any, options: BatchOptions, pending: list[BatchItem], writer: BatchWriter,
         begin: Callable[[dict[str, Any] | None], None],
         loaded: Callable[[dict[str, Any]], None], finished: Callable[[dict[str, Any]], None],
         state: JobState | None) -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # the batch shows its own
    context.verbose_stats_logs = False
    cpus, gpus = _cluster_resources(ray)
    device = options.request.device.strip().lower()
    cuda = device.startswith("cuda") or (device == "auto" and gpus > 0)
    if cuda and gpus < 1:
        raise UserError(f"--device {options.request.device} asks for CUDA, but the Ray "
                        "cluster has no GPU: use --device cpu, or join a cluster with GPUs.")
    if cuda:
        # a GPU actor: the model's thread and its writers on the CPUs beside its GPU
        actors = options.actors or max(1, int(gpus))
        beside = max(1, int(cpus) // actors)
        writers = options.writers or default_writers(beside)
        per_actor: dict[str, Any] = {"num_gpus": 1, "num_cpus": min(beside, 1 + writers)}
        threads = None
        request = options.request if device != "auto" else _with_device(options, "cuda")
    else:
        actors = options.actors or max(1, int(cpus) // CPUS_PER_ACTOR)
        share = max(1, int(cpus) // actors)
        writers = options.writers or default_writers(share)
        per_actor = {"num_cpus": share}
        threads = share
        request = options.request if device != "auto" else _with_device(options, "cpu")
    actors = min(actors, len(pending))
    items = [{"key": item.key, "path": item.path} for item in pending]
    dataset = ray.data.from_items(items, override_num_blocks=min(len(items), actors * 8))
    explained = dataset.map_batches(
        RayExplainer, fn_constructor_args=(request, threads, options.prefetch,
                                           options.outputs, writers,
                                           options.images_per_pass),
        batch_size=BATCH_SIZE, compute=ray.data.ActorPoolStrategy(size=actors),
        batch_format="default", **per_actor)
    begin(None)  # the clock runs from here: the actors' start and loading count
    told = False
    for row in explained.iter_rows():
        meta, files = _unpack(row)
        if "fatal" in meta:  # the model could not be loaded: nothing can be done
            raise UserError(meta["fatal"])
        if not told:
            told = True
            loaded(meta["info"])
        entry = meta["entry"]
        partial = writer.new_partial() if entry["status"] == "ok" else None
        if partial is not None:
            writer.write_files(partial, files)
        writer.commit(entry, partial)
        finished(entry)
        check_cancelled(state)


def _with_device(options: BatchOptions, device: str) -> ExplainRequest:
    from dataclasses import replace

    return replace(options.request, device=device)
