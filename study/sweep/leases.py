"""A storage's stage-lease table as one named Ray actor (object storage), reached by every trial on every node."""
from __future__ import annotations

import ray

from study.store.leases import LEASE_SECONDS, LeaseTable

ACTOR_NAMESPACE = "prior-study"


class RayLeases:
    """The same interface as :class:`LeaseTable`, forwarded to the sweep's named lease actor."""

    def __init__(self, actor_name: str):
        self.actor = ray.get_actor(actor_name, namespace=ACTOR_NAMESPACE)

    def claim(self, key: str, holder: str) -> tuple[bool, str]:
        return tuple(ray.get(self.actor.claim.remote(key, holder)))

    def renew(self, key: str, holder: str) -> bool:
        return ray.get(self.actor.renew.remote(key, holder))

    def release(self, key: str, holder: str) -> None:
        ray.get(self.actor.release.remote(key, holder))


def start_lease_actor(name: str):
    """Create (or find) the storage's lease actor. Detached: it must outlive this sweep, since other sweeps on
    the same storage and Ray cluster may hold leases in it; it ends with the Ray cluster."""
    actor = ray.remote(num_cpus=0)(LeaseTable)
    return actor.options(name=name, namespace=ACTOR_NAMESPACE, get_if_exists=True,
                         lifetime="detached").remote(LEASE_SECONDS)
