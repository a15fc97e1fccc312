"""Fault injection for the local stack, reproducible from a seed (docs/chaos.md).

`ChaosSpec` (spec) says what and how often; `Chaos` (faults) draws and counts the faults the
pipe, the poller and the `ChaosProxy` (proxy) in front of the store inject; `ChaosRestarter`
(restarter) restarts pipe and poller. Only `orgsync.local.stack` wires it in.
"""

from __future__ import annotations

from orgsync.local.chaos.faults import Chaos
from orgsync.local.chaos.proxy import ChaosProxy
from orgsync.local.chaos.restarter import ChaosRestarter, RestartTarget
from orgsync.local.chaos.spec import ChaosSpec, ChaosSpecError, FaultKind

__all__ = [
    "Chaos",
    "ChaosProxy",
    "ChaosRestarter",
    "ChaosSpec",
    "ChaosSpecError",
    "FaultKind",
    "RestartTarget",
]
