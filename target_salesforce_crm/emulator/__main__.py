"""Run the emulator as a process: `python -m target_salesforce_crm.emulator --port 8765`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
