"""Notification senders: webhook, Slack and Teams over HTTP (``http``)."""
