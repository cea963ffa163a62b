"""Airflow: a hook over an Airflow Connection and an operator over ``run``, laid out as
Airflow's own providers are (``hooks/``, ``operators/``, ``lineage``, ``provider``).

    from connector.airflow import HssImageSyncOperator

    HssImageSyncOperator.partial(task_id="sync", out="/lake/hss_images").expand(
        hss_conn_id=["hss_account_a", "hss_account_b"]  # one task per credential
    )

Needs Apache Airflow 3 (``pip install 'hss-image-connector[airflow]'``); the rest of the
package never imports this one. The names below are imported on first use (PEP 562), so
that ``connector.airflow.provider``, which Airflow reads in every process, imports no
Airflow and no pyarrow. Both classes only translate Airflow things into a
``connector.Config``; everything else is ``connector.run``.

The connection (default id ``hss_default``, connection type ``hss``: the package registers
it with Airflow as a provider, see ``connector.airflow.provider``, so the connection form shows the
fields below and its "Test" button reads one page; any other type, e.g. ``generic``, works
too):

    password                 the IAM token (``auth`` = ``token``, the default), the secret
                             key (``aksk``) or the IAM user's password (``iam``)
    login                    the access key (``aksk``) or the IAM user name (``iam``)
    extra auth               ``token`` | ``aksk`` | ``iam``
    extra region | endpoint  a public-cloud region (``cn-north-4``) or an endpoint URL
    extra project_ids        a list, a comma-separated string, or ``all`` (every project the
                             credentials can access in the region: ``Config.all_projects``)
    extra security_token     temporary AK/SK credentials only
    extra domain             the account (domain) name of an IAM user (``iam`` only)
    extra iam_endpoint       IAM endpoint (``iam`` only; derived from a public-cloud region)
    extra rate, concurrency  requests per second (0 = no limit) and requests in flight
    extra allow_insecure_http  true to allow http:// to a non-loopback endpoint
    extra skip_published     true: leave out projects already published for the snapshot
                             date by a run of the same query (the operator: from try 2)
    extra enterprise_project_id  the enterprise project to read (default ``all_granted_eps``:
                             every one the credentials may see; the API's own default ``0``
                             is only the default enterprise project)
    extra page_size, has_vul, ...  any other speed setting or filter, named and read as
                             the config file's keys are (``connector.settings.keys``)

The snapshot date is the UTC date the task reads the inventory on, not the run's logical
date: the API has no history. A run whose logical date is older than yesterday (a backfill,
a catch-up run, a cleared old run) is skipped with a message instead of writing today's
inventory under a day that is over.

The hook only gathers the connection's fields and the operator's arguments;
``connector.settings.keys.build_config`` reads them exactly as it reads flags and file keys. A
mistake is a ``ConfigError`` naming the connection and the extra (``connection
'hss_default' extra rate: ...``) or the argument (``argument rate: ...``). Whether a task
is retried is the error's ``permanent`` flag (``connector.errors``).
Secrets are held in ``connector.Secret``, registered with Airflow's log masker and never
logged or put in an error message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector._lazy import lazy_exports

if TYPE_CHECKING:
    from connector.airflow.events import LAKE_ASSET_NAME as LAKE_ASSET_NAME
    from connector.airflow.events import day_changes as day_changes
    from connector.airflow.events import day_extra as day_extra
    from connector.airflow.hooks.hss import DEFAULT_CONN_ID as DEFAULT_CONN_ID
    from connector.airflow.hooks.hss import EXTRA_KEYS as EXTRA_KEYS
    from connector.airflow.hooks.hss import HssHook as HssHook
    from connector.airflow.operators.sync import HssImageSyncOperator as HssImageSyncOperator
    from connector.airflow.operators.sync import lake_asset as lake_asset

_MODULE_OF = {
    "DEFAULT_CONN_ID": "hooks.hss",
    "EXTRA_KEYS": "hooks.hss",
    "HssHook": "hooks.hss",
    "HssImageSyncOperator": "operators.sync",
    "lake_asset": "operators.sync",
    "LAKE_ASSET_NAME": "events",
    "day_changes": "events",
    "day_extra": "events",
}

__all__ = sorted(_MODULE_OF)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _MODULE_OF)
