"""Sync the Huawei Cloud HSS local image list into hive-partitioned Parquet.

from connector import Config, Auth, Secret, run
report = run(Config(projects=("0a1b...",), endpoint="https://hss.cn-north-4.myhuaweicloud.com",
                    out="lake/hss_images", auth=Auth(token=Secret(token))))

The names below are imported on first use (PEP 562): ``import connector.provider``, which
is how Airflow reads the provider's metadata in its scheduler, webserver and CLI, then
costs a few milliseconds instead of importing pyarrow and aiohttp (0.8 s of CPU, 70 MB).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__ as __version__

if TYPE_CHECKING:
    from .config import Auth as Auth
    from .config import Config as Config
    from .config import FetchSettings as FetchSettings
    from .config import Filters as Filters
    from .config import QuarantineLimit as QuarantineLimit
    from .config import RetryPolicy as RetryPolicy
    from .config import Secret as Secret
    from .errors import ApiError as ApiError
    from .errors import AuthError as AuthError
    from .errors import ConfigError as ConfigError
    from .errors import ConnectorError as ConnectorError
    from .errors import DataLossError as DataLossError
    from .errors import DiscoveryError as DiscoveryError
    from .errors import InvalidRequestError as InvalidRequestError
    from .errors import MalformedResponseError as MalformedResponseError
    from .errors import OutputError as OutputError
    from .errors import QuarantineLimitError as QuarantineLimitError
    from .errors import ServerError as ServerError
    from .errors import ThrottledError as ThrottledError
    from .errors import TransportError as TransportError
    from .pipeline import run as run
    from .pipeline import run_async as run_async
    from .report import ProjectReport as ProjectReport
    from .report import RunReport as RunReport
    from .signing import AkSkCredentials as AkSkCredentials

_MODULE_OF = {
    "AkSkCredentials": "signing",
    "ApiError": "errors",
    "Auth": "config",
    "AuthError": "errors",
    "Config": "config",
    "ConfigError": "errors",
    "ConnectorError": "errors",
    "DataLossError": "errors",
    "DiscoveryError": "errors",
    "FetchSettings": "config",
    "Filters": "config",
    "InvalidRequestError": "errors",
    "MalformedResponseError": "errors",
    "OutputError": "errors",
    "ProjectReport": "report",
    "QuarantineLimit": "config",
    "QuarantineLimitError": "errors",
    "RetryPolicy": "config",
    "RunReport": "report",
    "Secret": "config",
    "ServerError": "errors",
    "ThrottledError": "errors",
    "TransportError": "errors",
    "run": "pipeline",
    "run_async": "pipeline",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """A public name's value, from its module (imported now if it was not yet)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
