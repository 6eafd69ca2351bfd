"""Planner: owns the Task lifecycle; plans subtask DAGs, dispatches them, advances status."""
