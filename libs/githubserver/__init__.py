"""Local GitHub server: the GitHub REST endpoints the product uses, in memory, for development and tests.

`libs.githubserver.app.create_app` builds the Litestar app, `libs.githubserver.state` holds the
repositories, `libs.githubserver.git` their git objects, `libs.githubserver.accounts` the users,
organizations, the GitHub App, its installations and the credentials handed out,
`libs.githubserver.bodies`, `app_bodies`, `render` and `app_render` GitHub's JSON shapes; the routes
beyond the repositories' are in `apps`, `oauth`, `issues` and `control` (with `webhooks`, the
deliveries it sends), and `libs.githubserver.main` runs it (`python -m libs.githubserver`).
"""
