"""Fixed vocabularies the simulated inventory draws its values from.

Enumerations are tuples: records store the index (a small code) and the served value is
looked up here, so the codes below are part of the inventory's internal format.
"""

from __future__ import annotations

__all__ = [
    "APPS",
    "CONTAINER_SERVICES",
    "ENTERPRISE_PROJECT_IDS",
    "EXTRA_LABELS",
    "HOST_PATTERNS",
    "IMAGE_NAMES",
    "IMAGE_VERSIONS",
    "LOCAL_IMAGE_TYPES",
    "NON_SCAN_REASONS",
    "OTHER_IMAGE",
    "SCAN_FAILED_DESCS",
    "SCAN_STATUSES",
    "SEVERITY_LEVELS",
    "SWR_IMAGE",
    "WAITING_FOR_SCAN",
]

LOCAL_IMAGE_TYPES = ("other_image", "swr_image")
OTHER_IMAGE = 0
SWR_IMAGE = 1

# The response spells the last status ``waiting``; the query parameter ``waiting_for_scan``.
SCAN_STATUSES = ("unscan", "success", "scanning", "failed", "waiting")
WAITING_FOR_SCAN = "waiting_for_scan"

SEVERITY_LEVELS = ("Security", "Low", "Medium", "High")

SCAN_FAILED_DESCS = (
    "unknown_error",
    "failed_to_match_agent",
    "create_container_failed",
    "get_container_info_failed",
    "docker_offline",
    "get_docker_root_failed",
    "image_not_exist_or_docker_api_fault",
    "huge_image",
    "docker_root_in_nfs",
    "response_timed_out",
)

# Free text in the public-cloud edition ("why this image cannot be scanned").
NON_SCAN_REASONS = (
    "The image format is not supported.",
    "Insufficient permissions to read the image.",
    "The image exceeds the maximum size that can be scanned.",
    "The container engine on the host is not supported.",
)

# "0" is the default enterprise project; the code of a record is its index here.
ENTERPRISE_PROJECT_IDS = (
    "0",
    "5e4c9a2b-7d1f-4c3e-9b8a-2f6d0e1c3a47",
    "b81f0c3d-26a9-4e57-8d14-9c3e7a5f2b60",
)

# (name, type) pairs: names with "-", "/" and "." and registry prefixes.
IMAGE_NAMES: tuple[tuple[str, int], ...] = (
    ("nginx", OTHER_IMAGE),
    ("redis", OTHER_IMAGE),
    ("library/redis", OTHER_IMAGE),
    ("library/nginx", OTHER_IMAGE),
    ("postgres", OTHER_IMAGE),
    ("mysql", OTHER_IMAGE),
    ("busybox", OTHER_IMAGE),
    ("alpine", OTHER_IMAGE),
    ("python", OTHER_IMAGE),
    ("node", OTHER_IMAGE),
    ("openjdk", OTHER_IMAGE),
    ("golang", OTHER_IMAGE),
    ("prod/payments-api", OTHER_IMAGE),
    ("prod/orders-service", OTHER_IMAGE),
    ("staging/web-frontend", OTHER_IMAGE),
    ("team-a/etl.worker", OTHER_IMAGE),
    ("grafana/grafana", OTHER_IMAGE),
    ("prom/prometheus", OTHER_IMAGE),
    ("prom/node-exporter", OTHER_IMAGE),
    ("bitnami/kafka", OTHER_IMAGE),
    ("elastic/elasticsearch", OTHER_IMAGE),
    ("jenkins/jenkins", OTHER_IMAGE),
    ("quay.io/coreos/etcd", OTHER_IMAGE),
    ("docker.io/library/ubuntu", OTHER_IMAGE),
    ("gcr.io/distroless/static", OTHER_IMAGE),
    ("registry.k8s.io/pause", OTHER_IMAGE),
    ("registry.k8s.io/kube-proxy", OTHER_IMAGE),
    ("ghcr.io/acme/tool.cli", OTHER_IMAGE),
    ("swr.cn-north-4.myhuaweicloud.com/team/app", SWR_IMAGE),
    ("swr.cn-north-4.myhuaweicloud.com/hwofficial/cce-agent", SWR_IMAGE),
    ("swr.cn-north-4.myhuaweicloud.com/prod/payments-api", SWR_IMAGE),
    ("swr.cn-east-3.myhuaweicloud.com/ops/log-collector", SWR_IMAGE),
    ("swr.cn-east-3.myhuaweicloud.com/data/spark-runner", SWR_IMAGE),
    ("swr.ap-southeast-1.myhuaweicloud.com/web/storefront", SWR_IMAGE),
    ("swr.ap-southeast-3.myhuaweicloud.com/ml/model.server", SWR_IMAGE),
    ("swr.eu-west-101.myhuaweicloud.eu/shop/cart-svc", SWR_IMAGE),
)

IMAGE_VERSIONS = (
    "latest",
    "1.25.3",
    "1.24.0",
    "7.2.4",
    "v2.3.1-alpine",
    "3.12-slim",
    "16-alpine",
    "2024.05.1",
    "v1",
    "stable",
    "8.0.36",
    "17-jdk",
    "1.21.5-bookworm",
    "sha-3f9c2ab",
    "release-2025.10",
    "0.9.0-rc.1",
    "v3.4.2",
    "20.04",
)

# Software found in images by a scan.
APPS = (
    "openssl",
    "nginx",
    "python3",
    "glibc",
    "zlib",
    "curl",
    "busybox",
    "bash",
    "openjdk",
    "nodejs",
    "log4j-core",
    "spring-core",
    "libxml2",
    "sqlite",
    "perl",
    "musl",
    "ca-certificates",
    "tzdata",
)

# Host name templates: ``{n}`` is a number, ``{x}`` four hex digits.
HOST_PATTERNS = (
    "ecs-web-{n:02d}",
    "ecs-db-{n:02d}",
    "k8s-node-{n:03d}",
    "cce-prod-node-{x}",
    "cce-staging-node-{x}",
    "batch-worker-{n:03d}",
    "bastion-{n:02d}",
    "gpu-train-{n:02d}",
)

CONTAINER_SERVICES = (
    "payments-api",
    "orders",
    "web",
    "redis-cache",
    "log-agent",
    "etl",
    "gateway",
    "metrics",
)

EXTRA_LABELS = (
    {"maintainer": "platform-team", "tier": "backend"},
    {"org.opencontainers.image.source": "https://example.com/repo.git"},
    {"env": "prod", "owner": "payments"},
)
