"""`python -m libs.flyserver`: run the local Fly server."""

from libs.flyserver.main import main

main()
