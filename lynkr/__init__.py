"""Lynkr: a configuration-as-code LLM proxy.

Stage authors import from here only:

    from lynkr import Stage, Exchange, Response, ProxyError
"""
__version__ = "0.1.0"

from .errors import ConfigError, ProxyError
from .exchange import Exchange, Response, Route, StageEvent
from .stage import BuildContext, Stage

__all__ = ["__version__", "BuildContext", "ConfigError", "Exchange", "ProxyError", "Response", "Route", "Stage", "StageEvent"]
