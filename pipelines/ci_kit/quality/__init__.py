"""Model quality that travels with the version (issue 15).

A release's evaluation record (schema.py) is written by the product's tests or its
evaluate-command, checked and stored inside the test record of the run that made it, so
promotion copies it with the evidence. The quality gate (gate.py) compares it with the
baseline's record, the newest release on the stable index (baseline.py), and `ci-kit
report` (report.py) shows the records over the versions. Only baseline.py, history.py and
profile.py read anything; the rules themselves are pure.
"""
