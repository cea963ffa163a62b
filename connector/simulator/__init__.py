"""An embedded HSS API simulator: ``GET /v5/{project_id}/image/local-repositories``.

Serves a seeded, deterministic inventory for any project id with the reference's paging,
filters, validation, auth (tokens, AK/SK signatures with lock-out, and project-scoped tokens
from a simulated IAM at ``POST /v3/auth/tokens``, which also lists the account's projects
at ``GET /v3/auth/projects``), throttling, plus configurable latency,
faults, drift, gateway behaviours (capped, short, empty pages, a lagging total, records
swapped across pages) and images shared by several hosts::

    async with running_simulator(SimulatorConfig(records=5000)) as sim:
        ...  # GET f"{sim.base_url}/v5/<project>/image/local-repositories?limit=200"

    with simulator_in_thread(SimulatorConfig(tokens=frozenset({"t"}))) as sim:
        sim.inventory.records("p1", scan_status="success")  # what the API serves
"""

from connector.simulator.app import create_app
from connector.simulator.config import (
    DriftConfig,
    FaultConfig,
    GatewayConfig,
    IamProject,
    PageCut,
    ProjectFailure,
    SimulatorConfig,
)
from connector.simulator.drift import DriftEvent
from connector.simulator.faults import DataFault, DataFaultKind, TransportFault
from connector.simulator.gateway import PageBehaviour
from connector.simulator.inventory import NATURAL_KEY, Inventory, NaturalKey, natural_key
from connector.simulator.server import RunningSimulator, running_simulator, simulator_in_thread
from connector.simulator.stats import ProjectStats, RequestLogEntry, SimulatorStats

__all__ = [
    "NATURAL_KEY",
    "DataFault",
    "DataFaultKind",
    "DriftConfig",
    "DriftEvent",
    "FaultConfig",
    "GatewayConfig",
    "IamProject",
    "Inventory",
    "NaturalKey",
    "PageBehaviour",
    "PageCut",
    "ProjectFailure",
    "ProjectStats",
    "RequestLogEntry",
    "RunningSimulator",
    "SimulatorConfig",
    "SimulatorStats",
    "TransportFault",
    "create_app",
    "natural_key",
    "running_simulator",
    "simulator_in_thread",
]
