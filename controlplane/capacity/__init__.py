"""Capacity: forecasts of configured resource signals, reports, and capacity-risk incidents.

`offline` serves `aiops forecast`; `fleet` forecasts many series in a process pool or on Dask;
`report` builds and renders capacity reports; `job` runs them on the cron schedule in the
control plane and opens capacity-risk incidents.
"""
