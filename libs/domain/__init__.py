"""The domain model: aggregates whose event methods are their state machines."""
