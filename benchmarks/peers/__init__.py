"""The tools a user would otherwise pick, each a script run as its own process.

    naive         a sequential aiohttp loop: one page at a time, every record kept in a
                  list, one Parquet file written at the end
    dlt_rest_api  dlt's ``rest_api`` source with its offset paginator, written as Parquet
                  by the filesystem destination

Both read the same simulator as the connector, with the same query (every enterprise
project), and take the token from ``HSS_AUTH_TOKEN``. They are benchmark-only code.
"""
