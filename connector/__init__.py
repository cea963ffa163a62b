"""Sync the Huawei Cloud HSS local image list into hive-partitioned Parquet.

from connector import Config, Auth, Secret, run
report = run(Config(projects=("0a1b...",), endpoint="https://hss.cn-north-4.myhuaweicloud.com",
                    out="lake/hss_images", auth=Auth(token=Secret(token))))

The names below are imported on first use (PEP 562): ``import connector.airflow.provider``, which
is how Airflow reads the provider's metadata in its scheduler, webserver and CLI, then
costs a few milliseconds instead of importing pyarrow and aiohttp (0.8 s of CPU, 70 MB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector._lazy import lazy_exports
from connector.version import __version__ as __version__

if TYPE_CHECKING:
    from connector.errors import ApiError as ApiError
    from connector.errors import AuthError as AuthError
    from connector.errors import ConfigError as ConfigError
    from connector.errors import ConnectorError as ConnectorError
    from connector.errors import DataLossError as DataLossError
    from connector.errors import DiscoveryError as DiscoveryError
    from connector.errors import InvalidRequestError as InvalidRequestError
    from connector.errors import MalformedResponseError as MalformedResponseError
    from connector.errors import OutputError as OutputError
    from connector.errors import QuarantineLimitError as QuarantineLimitError
    from connector.errors import ServerError as ServerError
    from connector.errors import ThrottledError as ThrottledError
    from connector.errors import TransportError as TransportError
    from connector.job.pipeline import run as run
    from connector.job.pipeline import run_async as run_async
    from connector.job.report import ProjectReport as ProjectReport
    from connector.job.report import RunReport as RunReport
    from connector.lake.diff import Diff as Diff
    from connector.lake.diff import diff as diff
    from connector.settings.config import Auth as Auth
    from connector.settings.config import Config as Config
    from connector.settings.config import FetchSettings as FetchSettings
    from connector.settings.config import Filters as Filters
    from connector.settings.config import QuarantineLimit as QuarantineLimit
    from connector.settings.config import RetryPolicy as RetryPolicy
    from connector.settings.config import Secret as Secret
    from connector.source.signing import AkSkCredentials as AkSkCredentials

_MODULE_OF = {
    "AkSkCredentials": "source.signing",
    "ApiError": "errors",
    "Auth": "settings.config",
    "AuthError": "errors",
    "Config": "settings.config",
    "ConfigError": "errors",
    "ConnectorError": "errors",
    "DataLossError": "errors",
    "Diff": "lake.diff",
    "DiscoveryError": "errors",
    "FetchSettings": "settings.config",
    "Filters": "settings.config",
    "InvalidRequestError": "errors",
    "MalformedResponseError": "errors",
    "OutputError": "errors",
    "ProjectReport": "job.report",
    "QuarantineLimit": "settings.config",
    "QuarantineLimitError": "errors",
    "RetryPolicy": "settings.config",
    "RunReport": "job.report",
    "Secret": "settings.config",
    "ServerError": "errors",
    "ThrottledError": "errors",
    "TransportError": "errors",
    "diff": "lake.diff",
    "run": "job.pipeline",
    "run_async": "job.pipeline",
}

__all__ = sorted(_MODULE_OF)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _MODULE_OF)
