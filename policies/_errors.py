"""Errors of the ``policies`` package (the ledger and the decision log have their own).

* PolicyError          -- base of every error ``policies`` raises
  * PolicyInvalid      -- a policy file cannot be used; ``problems`` lists every problem
                          with file, line, column and field (also a
                          ``tomlconf.ConfigError``, so configuration loaders catch it)
  * RequestInvalid     -- a request file for ``explain`` cannot be used; ``problems``
                          as above (also a ``tomlconf.ConfigError``)

The evaluator raises nothing: a denial is a ``Decision`` with ``allowed=False``.
"""

from __future__ import annotations

import tomlconf


class PolicyError(Exception):
    """Base of every error raised by ``policies``."""


class PolicyInvalid(PolicyError, tomlconf.ConfigError):
    """A policy file cannot be used; ``problems`` lists every problem found."""


class RequestInvalid(PolicyError, tomlconf.ConfigError):
    """A request file cannot be used; ``problems`` lists every problem found."""
