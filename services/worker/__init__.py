"""The worker (`orchestrator-worker`): an external agent of spec 002 in one process. It claims a
run over HTTP, fetches its files, runs the product's agent loop on them while heartbeating the
lease, completes or fails the run, and reports the end to a callback URL. It talks HTTP only."""
