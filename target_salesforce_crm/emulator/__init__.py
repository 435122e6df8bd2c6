"""Local Salesforce org emulator: a real HTTP server on loopback speaking the REST contract.

It is written from the wire contract alone (never from this package's client), so
the client's tests exercise real HTTP against independent behaviour.
"""

from .faults import FaultSettings
from .ids import make_id
from .service import FIXTURE_CREDENTIALS, Emulator

__all__ = ["FIXTURE_CREDENTIALS", "Emulator", "FaultSettings", "make_id"]
