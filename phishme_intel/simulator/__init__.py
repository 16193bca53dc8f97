"""A fake Cofense (PhishMe) Intelligence API for tests and benchmarks (see docs/api.rst).

    ds = Dataset(seed=1, malware=200, phish=50)
    with Simulator(ds, user="user", password="secret") as sim:
        ...  # point a client at sim.url; inspect sim.requests; sim.faults.add("429")

``python -m phishme_intel.simulator`` runs one as a separate process.
"""

from .dataset import Dataset
from .faults import Fault, FaultQueue
from .server import RequestRecord, Simulator

__all__ = ["Dataset", "Fault", "FaultQueue", "RequestRecord", "Simulator"]
