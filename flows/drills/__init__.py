"""Tabletop drills: scenarios, drill runs against sandboxes, scoring, freshness."""
