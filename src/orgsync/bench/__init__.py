"""`orgsync bench`: throughput, lag, requests and price per change against same-run baselines.

`phases` runs them in order, `report` turns what they measured into figures and targets met.
"""
