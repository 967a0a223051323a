"""Chat: the Slack backend, the embedded local outbox, and the `slack.*` actions.

Every chat backend raises `ChatError` for a call it cannot make, so actions handle one error.
"""

from flows.errors import StepFailed


class ChatError(StepFailed):
    """The chat system refused a call or could not be reached; the message says what to fix."""
