"""Peak resident memory of the calling process, for the benchmarks' fresh-subprocess memory rows.

``ru_maxrss`` (getrusage) survives ``fork``: a child started by a runner that already holds gigabytes reports the
runner's peak, not its own. ``VmHWM`` in /proc/self/status is the high-water mark of this process's own address
space (reset by ``exec``), so it is used where available (Linux); ``ru_maxrss`` elsewhere.
"""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """Peak RSS of this process in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
