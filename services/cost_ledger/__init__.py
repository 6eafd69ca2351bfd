"""Cost ledger: owns Ledgers; prices every provider call and keeps per-task totals."""
