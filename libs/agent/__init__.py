"""The agent: a bounded, tool-using conversation with a model over a repository snapshot."""
