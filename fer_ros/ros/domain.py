"""A ROS graph of one's own for tests, the demo and the benchmarks: a claimed ROS_DOMAIN_ID and
localhost discovery, so that concurrent runs on one machine never see each other's nodes.
Plain Python (no rclpy): the test suite calls it before anything starts a participant.
"""

import fcntl
import os
import random
import tempfile

_claimed: list = []  # lock files held for this process's lifetime


def claim_domain_id(low: int = 1, high: int = 100) -> int:
    """A ROS_DOMAIN_ID no other process of this machine that claims ids this way is using.

    Each id has a lock file in the temp folder; the id belongs to whoever holds the file's lock,
    until that process exits (the kernel releases it, also on a crash). Ids are tried from a random
    start, so concurrent test runs, demos and benchmarks never share a graph.
    """
    ids = list(range(low, high + 1))
    start = random.SystemRandom().randrange(len(ids))
    for domain in ids[start:] + ids[:start]:
        handle = open(os.path.join(tempfile.gettempdir(), f"fer_ros_domain_{domain}.lock"), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _claimed.append(handle)
        return domain
    raise RuntimeError(f"every ROS_DOMAIN_ID from {low} to {high} is claimed by another process")


def private_graph(env: dict | None = None) -> str:
    """Put this process (and the children that inherit `env`, by default os.environ) on a graph of
    its own: a claimed ROS_DOMAIN_ID unless one is set, localhost discovery unless a range is
    set."""
    env = os.environ if env is None else env
    if "ROS_DOMAIN_ID" not in env:
        env["ROS_DOMAIN_ID"] = str(claim_domain_id())
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return (
        f"ROS_DOMAIN_ID {env['ROS_DOMAIN_ID']}, discovery {env['ROS_AUTOMATIC_DISCOVERY_RANGE']}"
    )
