"""The Celery side of Shotline: the Celery app, its tasks and the capture engines."""
