"""The ``accord`` command: a thin assembly of each component's command group."""

from accord_cli._app import app as app
from accord_cli._app import main as main

__all__ = ["app", "main"]
