"""Local GitHub server: the GitHub REST endpoints that open a pull request, in memory, for development and tests.

`libs.githubserver.app.create_app` builds the Litestar app, `libs.githubserver.state` holds the
repositories, `libs.githubserver.git` their git objects, `libs.githubserver.bodies` and
`libs.githubserver.render` GitHub's JSON shapes, and `libs.githubserver.main` runs it
(`python -m libs.githubserver`).
"""
