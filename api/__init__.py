"""The HTTP edge of Shotline: FastAPI routes that validate, call one service, map errors."""
