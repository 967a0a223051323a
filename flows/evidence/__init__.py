"""Evidence: typed records, the hash-chained ledger, redaction, seals, bundles and the report."""
