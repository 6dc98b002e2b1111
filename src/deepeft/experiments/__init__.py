"""Named, parameterised experiments that pair theory with simulation (``deepeft run NAME``).

Register a new experiment in one small module in this package::

    from deepeft.experiments import Experiment, param, register, zcheck

    @register
    class MyExperiment(Experiment):
        name = "my-experiment"
        description = "one line"
        @dataclasses.dataclass(frozen=True)
        class Params:
            n: int = param(1000, "samples", min=2)
            seed: int = param(0, "experiment seed", min=0)
        presets = {"quick": {}, "paper": {"n": 10**6}}
        def sweep(self, p): ...
        def compute(self, p, task, ctx): ...
        def analyze(self, p, ds): ...

See ``docs/experiments.md``.
"""

from .base import Experiment
from .checks import KINDS, Check, close_check, greater_check, headline, headline_text, ratio_check, zcheck
from .config import param
from .executors import ClusterUnavailable, TaskFailed, open_executor
from .registry import available_experiments, get_experiment, load_errors, register
from .report import write_report
from .runner import reproduce, resolve_params, run_experiment, source_fingerprint
from .seeds import TaskContext, task_seed

__all__ = [
    "Check",
    "KINDS",
    "ClusterUnavailable",
    "Experiment",
    "TaskContext",
    "TaskFailed",
    "available_experiments",
    "close_check",
    "get_experiment",
    "greater_check",
    "headline",
    "headline_text",
    "load_errors",
    "open_executor",
    "param",
    "ratio_check",
    "register",
    "reproduce",
    "resolve_params",
    "run_experiment",
    "source_fingerprint",
    "task_seed",
    "write_report",
    "zcheck",
]
