"""Ray on the driver's side: connecting, sizing the worker pool, probing sources as tasks, and our
own bounded dispatch over actors (`ray.wait`, retries, replacement of dead actors).

Ray is imported inside each function, so importing this module does not start or load Ray.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from evc_archive.core.errors import EVCError
from evc_archive.core.runtime import one_line
from evc_archive.distributed.plan import SourceProbe
from evc_archive.distributed.worker import RETRYABLE_FIELD, EncodeJob, SegmentEncoder
from evc_archive.io.segment_decoder import SegmentDecoder
from evc_archive.io.sources import content_fingerprint, video_id_for
from evc_archive.io.store import Store

if TYPE_CHECKING:
    from evc_archive.distributed.submit import Events


def init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs = dict(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray.init(address=address, **kwargs) if address else ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise EVCError(f"cannot connect to the Ray cluster at '{address}': {one_line(exc)}") from None


def worker_options(cfg_workers: int | None, gpus_per_worker: float) -> tuple[int, dict[str, Any]]:
    import ray

    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0)
    if gpus >= gpus_per_worker > 0:
        n = cfg_workers or int(gpus // gpus_per_worker)
        return max(1, n), {"num_gpus": gpus_per_worker, "num_cpus": 1}
    n = cfg_workers or int(resources.get("CPU", 1))
    return max(1, n), {"num_cpus": 1}


def _probe(uri: str, options: dict[str, Any]) -> SourceProbe:
    """Runs on the cluster: fingerprint and probe one source; errors become a probe with error."""
    from evc_archive.io.sources import open_source
    from evc_archive.io.video_probe import probe_video

    try:
        video_id = video_id_for(uri, content_fingerprint(uri, options))
    except Exception as exc:  # noqa: BLE001 - unreadable URL, missing bucket, credentials
        return SourceProbe(uri, video_id_for(uri, "u" + hashlib.sha256(uri.encode()).hexdigest()),
                           error=f"cannot read source: {one_line(exc)}")
    try:
        source = open_source(uri, options)
        try:
            info = probe_video(source)
        finally:
            if hasattr(source, "close"):
                source.close()
    except Exception as exc:  # noqa: BLE001
        return SourceProbe(uri, video_id, error=one_line(exc))
    return SourceProbe(uri, video_id, info.frame_count, info.width, info.height, info.fps)


def probe_sources(uris: list[str], options: dict[str, Any]) -> list[SourceProbe]:
    import ray

    task = ray.remote(num_cpus=1)(_probe)
    return ray.get([task.remote(u, options) for u in uris])


class ActorPool:
    """Our own bounded dispatch over Ray actors: `ray.wait`, retries, replacement of dead actors.
    (Retries and idempotence are ours: Ray's ActorPool does not give fault tolerance.)"""

    def __init__(self, n_workers: int, options: dict[str, Any], job: EncodeJob, capacity: int, events: Events):
        import ray

        self.cls = ray.remote(SegmentEncoder)
        self.options, self.job, self.capacity, self.events = options, job, capacity, events
        self.actors = [self._new() for _ in range(n_workers)]

    def _new(self):
        return self.cls.options(**self.options).remote(self.job)

    def run(self, items: list, call: Callable, failed_row: Callable, on_result: Callable, max_retries: int,
            stop: threading.Event | None, tick: Callable[[], None] = lambda: None) -> None:
        """call(actor, item) -> ref; on_result(item, result, attempts) for each final result."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        load = {i: 0 for i in range(len(self.actors))}
        queue: deque = deque((item, 1) for item in items)
        in_flight: dict[Any, tuple[Any, int, int, Any]] = {}  # ref -> (item, attempt, slot, actor)
        while queue or in_flight:
            while queue and not (stop is not None and stop.is_set()):
                i = min(load, key=load.get)
                if load[i] >= self.capacity:
                    break
                item, attempt = queue.popleft()
                in_flight[call(self.actors[i], item)] = (item, attempt, i, self.actors[i])
                load[i] += 1
            if not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in ready:
                item, attempt, i, actor = in_flight.pop(ref)
                load[i] -= 1
                try:
                    result = ray.get(ref)
                except (RayActorError, RayTaskError) as exc:
                    # a dead actor fails every call it had in flight: replace it on the first only (each
                    # later one would start yet another actor, dropping the replacement and its work)
                    if isinstance(exc, RayActorError) and self.actors[i] is actor:
                        self.events.log(f"worker {i} died ({one_line(exc)}); starting a new one")
                        self.actors[i] = self._new()
                    result = failed_row(item, f"worker failure: {one_line(exc)}")
                if isinstance(result, dict) and result.get("status") == "failed" and result.get(RETRYABLE_FIELD) \
                        and attempt <= max_retries:
                    self.events.log(f"{getattr(item, 'segment_id', item)}: attempt {attempt} failed ({result.get('error')}); retrying")
                    queue.appendleft((item, attempt + 1))
                    continue
                on_result(item, result, attempt)
            tick()

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)


def decoder_actors(store: Store, archive: str, storage_options: dict[str, Any], workers: int | None,
                    n_items: int) -> tuple[list, bool]:
    """Decoder actors for restore/verify, and whether object bytes must ride with each call
    (a store that lives in the driver's process only)."""
    import ray

    n_workers, options = worker_options(workers, 1.0)
    route = not store.shared_across_processes
    models = {k.split("/")[-1]: store.read_bytes(k) for k in store.list("models") if k.endswith(".pt")} if route else None
    actor_cls = ray.remote(SegmentDecoder)
    actors = [actor_cls.options(**options).remote(archive, storage_options, models)
              for _ in range(max(1, min(n_workers, n_items)))]
    return actors, route


def gather(refs: dict, actors: list, sink: Callable[[dict[str, Any]], Any]) -> None:
    """Hand each result to sink as it completes, then stop the actors."""
    import ray

    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        for ref in ready:
            refs.pop(ref)
            sink(ray.get(ref))
    for a in actors:
        ray.kill(a)
