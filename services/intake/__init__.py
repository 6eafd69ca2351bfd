"""The intake service: GitHub command comments become tasks, and the issue hears of them."""
