"""Forensic snapshots: collectors gather evidence, a content-addressed store keeps it read-only."""
