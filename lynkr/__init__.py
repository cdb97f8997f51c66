"""Lynkr: a configuration-as-code LLM proxy.

Stage authors import from here only:

    from lynkr import Stage, Exchange, Response, ProxyError
"""
__version__ = "0.1.0"

from lynkr.errors import ConfigError, ProxyError
from lynkr.exchange import Exchange, Response, Route, StageEvent
from lynkr.stage import BuildContext, Stage

__all__ = ["__version__", "BuildContext", "ConfigError", "Exchange", "ProxyError", "Response", "Route", "Stage", "StageEvent"]
