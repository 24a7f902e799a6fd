"""Names of the Ray resources and node labels the jobs and the local cluster agree on."""

DRIVER_RESOURCE = "reprotune_driver"
"""Custom Ray resource a data-parallel trial holds instead of CPUs (local Ray and `make cluster-up`
declare it on the head node; a real cluster declares it in its head's start parameters)."""
DRIVER_SLOTS = 64
"""Units of ``DRIVER_RESOURCE`` a node declares: more than any concurrency the CPUs allow."""
NODE_LABEL = "reprotune-node"
"""Ray node label naming each node of the local cluster (head, worker); trials tag their runs with it."""
