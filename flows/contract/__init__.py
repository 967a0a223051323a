"""The action contract: what an action declares and receives, and the ports it acts through."""
