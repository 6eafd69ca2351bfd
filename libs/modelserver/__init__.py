"""Local model server: a deterministic, scriptable stand-in for the Anthropic and OpenAI APIs.

`libs.modelserver.app.create_app` builds the Litestar app, `libs.modelserver.script` holds the
scripting model, and `libs.modelserver.main` runs it (`orchestrator-model-server`).
"""
