"""Airflow operators: ``sync`` runs a sync as a task."""
