"""Local Fly server: the Fly Machines API endpoints the product uses (an app; a machine's create,
list, get, wait, stop and destroy), with Fly's bodies, status codes and states, whose machines
really run: each one's process is the configured worker command, started locally.

`libs.flyserver.app.create_app` builds the Litestar app, `state` holds the apps, tokens and
machines, `lifecycle` moves a machine through Fly's states, `processes` runs its process,
`control` has the server's own routes (`/_apps`, `/_machines`), and `libs.flyserver.main` runs
it (`python -m libs.flyserver`).
"""
