"""The fast layer (`pytest -m "not slow"`): pure logic and the CLI in-process, with an
in-memory index (fakes.py). A package, so that its module names (unit.conftest,
unit.test_*) never shadow the end-to-end suites' `conftest` and `test_*` modules."""
