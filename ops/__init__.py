"""Operations: alerts to chat robots and webhooks (ops.alerts), structured logs with run ids (ops.logs).

The Prometheus endpoint lives with the web app (review/web/routes_metrics.py); docs/operations.md
describes all three.
"""
