"""Triggers: the webhook and Slack app, the durable intake, routing and the workers."""
