"""Read models: tables that only projections of the event log write, and their queries."""
