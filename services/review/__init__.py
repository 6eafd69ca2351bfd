"""Review: owns Gates; opens the review gate of a task and records the human decision."""
