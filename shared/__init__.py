"""Code shared by the API edge and the Celery workers: settings, the job model and
status store, storage backends, the URL policy, errors and logging."""
