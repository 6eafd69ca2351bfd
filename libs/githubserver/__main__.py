"""`python -m libs.githubserver`: run the local GitHub server."""

from libs.githubserver.main import main

main()
