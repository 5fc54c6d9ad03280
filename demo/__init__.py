"""A throw-away federation on one machine: generated data, certificates, node processes."""

from demo._incidents import OFFENCES as OFFENCES
from demo._incidents import PROFILES as PROFILES
from demo._incidents import REGIONS as REGIONS
from demo._incidents import SCHEMA as SCHEMA
from demo._incidents import AgencyProfile as AgencyProfile
from demo._incidents import generate as generate
from demo._processes import NodeFleet as NodeFleet
from demo._processes import NodeProcess as NodeProcess
from demo._processes import NodeStartFailed as NodeStartFailed
from demo._provision import DATASET as DATASET
from demo._provision import DEMO_POLICIES as DEMO_POLICIES
from demo._provision import AgencySite as AgencySite
from demo._provision import DemoFederation as DemoFederation
from demo._provision import provision as provision
from demo._run import demo_queries as demo_queries
from demo._run import run_demo as run_demo

__all__ = [
    "DATASET",
    "DEMO_POLICIES",
    "OFFENCES",
    "PROFILES",
    "REGIONS",
    "SCHEMA",
    "AgencyProfile",
    "AgencySite",
    "DemoFederation",
    "NodeFleet",
    "NodeProcess",
    "NodeStartFailed",
    "demo_queries",
    "generate",
    "provision",
    "run_demo",
]
