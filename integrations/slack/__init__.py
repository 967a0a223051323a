"""Chat: the Slack backend, the embedded local outbox, and the `slack.*` actions."""
