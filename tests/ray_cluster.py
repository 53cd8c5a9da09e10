"""A real Ray cluster on this machine for tests: a head node and a second node process, 1 CPU each, on
free ports with a private temp folder (short: Ray's socket paths must fit in 107 bytes)."""
from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def two_node_cluster():
    from ray.cluster_utils import Cluster
    temp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")
    cluster = Cluster(initialize_head=True, shutdown_at_exit=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "gcs_server_port": free_port(), "temp_dir": temp,
        "dashboard_agent_listen_port": free_port(), "metrics_export_port": free_port(),
        "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}})
    try:
        cluster.add_node(num_cpus=1, temp_dir=temp)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
