"""Observability every tier shares: the metric-name list, alert rules and the Grafana dashboard."""
