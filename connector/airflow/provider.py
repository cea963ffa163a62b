"""The Airflow provider registration: what Airflow learns about the connector without
importing Airflow, the hook or any form library.

``pyproject.toml`` declares ``get_provider_info`` as the ``apache_airflow_provider`` entry
point, which is how Airflow finds providers installed with pip: the hook, the operator and
the connection type ``hss`` then show in ``airflow providers hooks``, in the connection form
(its fields, labels and placeholders) and behind the "Test" button.

The connection form is declared here once, as data (``CONN_FIELDS``, ``UI_FIELD_BEHAVIOUR``):
Airflow 3.2 and later read it from the provider info (``conn-fields``,
``ui-field-behaviour``); ``HssHook.get_connection_form_widgets`` and
``HssHook.get_ui_field_behaviour`` derive the older, per-hook form from the same data.
"""

from __future__ import annotations

from typing import Any

from connector import __version__

__all__ = ["CONN_FIELDS", "CONN_TYPE", "HOOK_NAME", "UI_FIELD_BEHAVIOUR", "get_provider_info"]

PACKAGE = "hss-image-connector"
CONN_TYPE = "hss"
HOOK_NAME = "Huawei Cloud HSS"
INTEGRATION = "Huawei Cloud Host Security Service (HSS)"

_TEXT = {"type": ["string", "null"]}

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "auth": {
        "label": "Authentication",
        "description": "token: password = an IAM token; aksk: login = access key, password = "
        "secret key; iam: login/password of an IAM user (with Account name)",
        "schema": {"type": ["string", "null"], "enum": ["token", "aksk", "iam"]},
    },
    "region": {
        "label": "Region",
        "description": "A public-cloud region, e.g. cn-north-4 (or give Endpoint instead)",
        "schema": _TEXT,
    },
    "endpoint": {
        "label": "Endpoint",
        "description": "The HSS endpoint URL (or give Host, or Region, instead)",
        "schema": _TEXT,
    },
    "discovery_region": {
        "label": "Discovery region",
        "description": "With project ids 'all': the region whose projects are read, when the "
        "endpoint's host does not name it",
        "schema": _TEXT,
    },
    "project_ids": {
        "label": "Project IDs",
        "description": "Comma-separated project ids to read, or all: every project of the region, listed through IAM",
        "schema": _TEXT,
    },
    "enterprise_project_id": {
        "label": "Enterprise project",
        "description": "Default all_granted_eps: every enterprise project the credentials may "
        "see (the API's own default, 0, is only the default enterprise project)",
        "schema": _TEXT,
    },
    "rate": {
        "label": "Requests per second",
        "description": "Per endpoint and credential; 0 = no limit (default 10)",
        "schema": {"type": ["number", "null"], "minimum": 0},
    },
    "concurrency": {
        "label": "Requests in flight",
        "description": "At once, over all projects (default 8); the rate needs rate x "
        "response time of them, and the task log says when this cap held the rate back",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "burst": {
        "label": "Burst (requests)",
        "description": "The rate limiter's bucket, >= 1: at most rate x t + burst requests in "
        "any t seconds (default 2; halved after a 429 it caused)",
        "schema": {"type": ["number", "null"], "minimum": 1},
    },
    "parallel_projects": {
        "label": "Projects at once",
        "description": "auto (as many as the memory budget fits, default) or a number",
        "schema": _TEXT,
    },
    "memory_limit": {
        "label": "Memory budget",
        "description": "For the projects read at once, e.g. 2GiB (default: a quarter of the "
        "memory the worker may use)",
        "schema": _TEXT,
    },
    "security_token": {
        "label": "Security token",
        "description": "Temporary AK/SK credentials only",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "domain": {
        "label": "Account (domain) name",
        "description": "The IAM user's account (auth iam only)",
        "schema": _TEXT,
    },
    "iam_endpoint": {
        "label": "IAM endpoint",
        "description": "auth iam only; default: derived from a public-cloud region",
        "schema": _TEXT,
    },
    "skip_published": {
        "label": "Skip projects already published today",
        "description": "Resume: leave out each project whose partition for this snapshot "
        "date a run of the same query published (the operator does so from its second try)",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "allow_insecure_http": {
        "label": "Allow plain http:// to a non-loopback endpoint",
        "description": "Sends credentials unencrypted",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "format": {
        "label": "Output format",
        "description": "parquet: hive-partitioned Parquet under out (default); iceberg: an "
        "Iceberg table, one commit per run",
        "schema": {"type": ["string", "null"], "enum": ["parquet", "iceberg"]},
    },
    "catalog": {
        "label": "Iceberg catalog",
        "description": "With format iceberg: a pyiceberg catalog by name (.pyiceberg.yaml or "
        "PYICEBERG_CATALOG__NAME__* on the worker); empty: a SQLite catalog under out",
        "schema": _TEXT,
    },
    "table": {
        "label": "Iceberg table",
        "description": "With format iceberg: namespace.name (default hss.image_local_info)",
        "schema": _TEXT,
    },
}
"""The connection's extras as form fields (their keys are the extras ``HssHook`` reads)."""

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": [],
    "relabeling": {
        "host": "Endpoint host (or Endpoint / Region below)",
        "port": "Endpoint port (default 443)",
        "schema": "Endpoint scheme (https; http only to loopback or with Allow plain http)",
        "login": "Access key or IAM user (empty for a token)",
        "password": "IAM token, secret key or IAM password",
    },
    "placeholders": {
        "host": "hss.cn-north-4.myhuaweicloud.com",
        "port": "443",
        "schema": "https",
        "login": "the AK (auth aksk) or the IAM user name (auth iam)",
        "password": "the secret: never shown in logs or errors",
        "auth": "token",
        "region": "cn-north-4",
        "endpoint": "https://hss.cn-north-4.myhuaweicloud.com",
        "project_ids": "0a1b2c...,9f8e7d...",
        "enterprise_project_id": "all_granted_eps",
        "rate": "10",
        "concurrency": "8",
        "burst": "2",
        "parallel_projects": "auto",
        "memory_limit": "2GiB",
    },
}
"""Standard fields relabelled and explained (the hook's ``get_ui_field_behaviour``): Host,
Port and Schema name the endpoint (``https://HOST:PORT``), as a connection URI's host does;
none is hidden."""


def get_provider_info() -> dict[str, Any]:
    """What Airflow's ProvidersManager reads (the ``apache_airflow_provider`` entry point)."""
    return {
        "package-name": PACKAGE,
        "name": "Huawei Cloud HSS image inventory",
        "description": "Sync the Huawei Cloud HSS local image list into hive-partitioned Parquet.",
        "versions": [__version__],
        "dependencies": ["apache-airflow>=3.3,<4"],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "tags": ["service"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["connector.airflow.operators.sync"],
            }
        ],
        "hooks": [
            {"integration-name": INTEGRATION, "python-modules": ["connector.airflow.hooks.hss"]}
        ],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "connector.airflow.hooks.hss.HssHook",
                "hook-name": HOOK_NAME,
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": UI_FIELD_BEHAVIOUR["hidden_fields"],
                    "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
                    "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
                },
            }
        ],
    }
