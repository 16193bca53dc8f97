"""The simulator in a process of its own, for the demo, the benchmarks and the tests of its command line.

``python -m phishme_intel.simulator`` writes its port to ``--port-file`` once it listens:
waiting for that file, not for some time, tells that it is ready.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any


class SimulatorProcess:
    """``python -m phishme_intel.simulator *arguments`` as a context manager; ``url`` once it listens.

    ``popen`` goes to :class:`subprocess.Popen` (stdout is discarded unless it says otherwise).
    Raises RuntimeError if the simulator exits, or is not listening after ``timeout`` seconds.
    """

    def __init__(self, folder: Path, *arguments: str, timeout: float = 600.0, **popen: Any) -> None:
        port_file = folder / "simulator.port"
        port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "phishme_intel.simulator", "--port-file", str(port_file), *arguments],
            **{"stdout": subprocess.DEVNULL, **popen},
        )
        try:
            self.port = wait_for_port(port_file, self.process, timeout)
        except RuntimeError:
            self.process.kill()
            self.process.wait()
            raise
        self.url = f"http://127.0.0.1:{self.port}/apiv1"

    def control(self, method: str, path: str) -> Any:
        """Call a ``/_sim`` control endpoint (``"POST", "mutate?republish=10"``); returns its JSON answer."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/_sim/{path}", method=method)
        with urllib.request.urlopen(request, timeout=600) as answer:
            return json.load(answer)

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def wait_for_port(port_file: Path, process: subprocess.Popen[Any], timeout: float) -> int:
    """The port ``process`` wrote to ``port_file`` once listening; RuntimeError if it exits or times out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        if process.poll() is not None:
            raise RuntimeError(f"the simulator exited ({process.returncode}) before it was ready")
        time.sleep(0.05)
    raise RuntimeError(f"the simulator was not listening within {timeout:g} s")
