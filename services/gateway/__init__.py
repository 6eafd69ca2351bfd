"""Gateway: the HTTP edge. Validates, sends commands to owners, answers from read models."""
