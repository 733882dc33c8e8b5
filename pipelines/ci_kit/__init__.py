"""ci-kit: build, test and promote the exact bytes of a Python data product on devpi.

Modules are named after the stage or concept they own; see docs/architecture.md.
Nothing heavy is imported here so that `ci-kit --help` starts fast.
"""

__version__ = "0.1.0"
