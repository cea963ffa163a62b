"""dlt's ``rest_api`` source (offset paginator) into Parquet files on the local disk.

    python -m benchmarks.peers.dlt_rest_api BASE_URL PROJECT_ID[,PROJECT_ID...] OUT_DIR PIPELINES_DIR

The configuration is the one dlt's documentation gives for an offset/limit API with a
total count in the body; nothing is tuned (dlt's defaults: one request at a time). One
project is the resource ``images``; several are one resource each, ``images_0``,
``images_1``, ... in the order given, in one source and one pipeline run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

PAGE_SIZE = 200


def _resource(name: str, project_id: str) -> dict[str, Any]:
    return {
        "name": name,
        "endpoint": {
            "path": f"v5/{project_id}/image/local-repositories",
            "params": {"enterprise_project_id": "all_granted_eps"},
            "data_selector": "data_list",
            "paginator": {
                "type": "offset",
                "limit": PAGE_SIZE,
                "offset_param": "offset",
                "limit_param": "limit",
                "total_path": "total_num",
            },
        },
    }


def main(argv: list[str]) -> int:
    base_url, project_ids, out, pipelines_dir = argv
    projects = project_ids.split(",")
    names = ["images"] if len(projects) == 1 else [f"images_{i}" for i in range(len(projects))]
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.rest_api import rest_api_source

    resources: list[Any] = [_resource(n, p) for n, p in zip(names, projects, strict=True)]
    source = rest_api_source(
        {
            "client": {
                "base_url": base_url,
                "auth": {
                    "type": "api_key",
                    "name": "X-Auth-Token",
                    "api_key": os.environ["HSS_AUTH_TOKEN"],
                    "location": "header",
                },
            },
            "resources": resources,
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="hss_bench",
        destination=dlt.destinations.filesystem(bucket_url=Path(out).resolve().as_uri()),
        dataset_name="hss",
        pipelines_dir=pipelines_dir,
    )
    info = pipeline.run(source, loader_file_format="parquet")
    info.raise_on_failed_jobs()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
