"""pytest plugin that ci-kit loads into the product's test run (`-p ci_kit_probe`).

It proves that the tests exercised the installed package: at the end of the session it
imports each top-level module of the product and records the file it came from, the
installed version and the interpreter. ci-kit checks that those files lie in the test
environment's site-packages. This directory holds nothing but this file, so putting it
on PYTHONPATH cannot make the product's source importable.
"""

import importlib
import json
import os
import sys


def pytest_sessionfinish(session: object, exitstatus: int) -> None:  # pytest is not imported: stdlib only
    out = os.environ.get("CI_KIT_PROBE_OUT")
    if not out:
        return
    modules = {}
    for name in filter(None, os.environ.get("CI_KIT_PROBE_MODULES", "").split(",")):
        try:
            modules[name] = getattr(importlib.import_module(name), "__file__", None) or ""
        except Exception as exc:  # report, never break the product's run
            modules[name] = f"!{type(exc).__name__}: {exc}"
    try:
        from importlib.metadata import version

        installed = version(os.environ.get("CI_KIT_PROBE_DIST", ""))
    except Exception:
        installed = ""
    import sysconfig

    # where this interpreter installs packages: ci-kit checks the modules against these
    # instead of starting the environment's Python once more to ask
    site = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    with open(out, "w") as fh:
        json.dump({"modules": modules, "version": installed, "python": sys.version.split()[0],
                   "executable": sys.executable, "sys_path": sys.path, "site_packages": site}, fh)
