"""Benchmarks: policyflow against the raw engines it runs on, measured side by side in one run.

`python -m bench [--quick] [NAME ...]`; results go to bench/results/NAME.json and a table.
"""
