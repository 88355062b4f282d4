"""Shotline's benchmarks: ``python -m bench [throughput|overhead|memory|all]`` (``make bench``).

Each benchmark starts the real parts it needs (redis-server, the API under uvicorn, Celery
workers, Chromium, the SnapAPI stand-in), compares Shotline side by side with a reference
measured in the same run (shot-scraper ``multi``, a bare Celery no-op task), and writes
``bench/results/<name>.json`` and ``bench/results/<name>.md``. Ratios matter more than
absolute figures: they hold on a shared machine where absolute times drift.
"""
