"""structlog configuration, applied once at each entry point (API, worker, CLI)."""

from __future__ import annotations

import logging
import sys

import structlog

#: Celery's loggers of a line per task ("Task … received", "Task … succeeded in …s"): off at
#: INFO (their warnings and errors stay). Shotline logs each job's state changes itself, and
#: at a few hundred jobs a second these two lines cost a worker a noticeable share of its CPU.
CELERY_PER_TASK = ("celery.app.trace", "celery.worker.strategy")


def configure_logging(*, level: str = "INFO", fmt: str = "json") -> None:
    """Route structlog and stdlib logging to stderr as JSON lines or readable console lines.

    Context bound with ``structlog.contextvars.bind_contextvars`` (job id, request id...)
    appears on every line logged while it is bound.
    """
    shared_processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "httpx", "httpcore", *CELERY_PER_TASK):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
