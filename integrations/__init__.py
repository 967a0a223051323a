"""The outside world: ticketing, chat, HTTP, shell and evidence actions, each with its backends."""
