"""Alert delivery for teams without Alertmanager: the incident model, the notifier, webhook payloads and
sending.
"""
