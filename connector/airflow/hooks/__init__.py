"""Airflow hooks: ``hss`` reads an HSS connection."""
