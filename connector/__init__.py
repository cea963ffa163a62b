"""Sync the Huawei Cloud HSS local image list into hive-partitioned Parquet.

from connector import Config, Auth, Secret, run
report = run(Config(projects=("0a1b...",), endpoint="https://hss.cn-north-4.myhuaweicloud.com",
                    out="lake/hss_images", auth=Auth(token=Secret(token))))
"""

from .config import Auth, Config, FetchSettings, Filters, QuarantineLimit, RetryPolicy, Secret
from .errors import (
    ApiError,
    AuthError,
    ConfigError,
    ConnectorError,
    DataLossError,
    DiscoveryError,
    InvalidRequestError,
    MalformedResponseError,
    OutputError,
    QuarantineLimitError,
    ServerError,
    ThrottledError,
    TransportError,
)
from .pipeline import run, run_async
from .report import ProjectReport, RunReport
from .signing import AkSkCredentials
from .version import __version__ as __version__

__all__ = [
    "AkSkCredentials",
    "ApiError",
    "Auth",
    "AuthError",
    "Config",
    "ConfigError",
    "ConnectorError",
    "DataLossError",
    "DiscoveryError",
    "FetchSettings",
    "Filters",
    "InvalidRequestError",
    "MalformedResponseError",
    "OutputError",
    "ProjectReport",
    "QuarantineLimit",
    "QuarantineLimitError",
    "RetryPolicy",
    "RunReport",
    "Secret",
    "ServerError",
    "ThrottledError",
    "TransportError",
    "run",
    "run_async",
]
