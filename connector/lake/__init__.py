"""Lake: where the output lives and how it is published.

``layout`` names the partitions and holds the lake's rules (one query per lake, one snapshot
per partition); ``writer`` stages a project's Parquet and publishes it whole; ``legacy``
moves a lake of the first layout to this one; ``diff`` reads two snapshots back and tells
what changed between them (``connector.diff``, ``hss-images diff``), ``diff_table`` the
snapshots of the Iceberg table (``iceberg``, ``--format iceberg``).
"""
