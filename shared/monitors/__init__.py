"""Monitors: captures taken on a schedule and compared with the last good one.

``models`` (what a client sends and what is stored), ``schedule`` (when a monitor's slots
fall), ``store`` (monitors, their due set and their runs in Redis), ``runs`` (turning a slot
into an ordinary capture job), ``scheduler`` (the loop that fires due slots), ``events``
(the ``monitor.changed`` / ``monitor.failed`` webhooks). Comparing pictures needs numpy and
runs in the workers only (:mod:`worker.monitor_diff`, :mod:`worker.monitor_results`).
"""
