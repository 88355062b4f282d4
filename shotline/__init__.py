"""Shotline's user-facing Python package: the ``shotline`` command line."""

__version__ = "0.1.0"
