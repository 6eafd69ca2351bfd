"""The executor's side of GitHub: an approved task's pull request (`pull_requests`), made of
GitHub calls (`git_steps`) through one kept-open client (`client`), one publisher per branch
(`branch_locks`), tried again while GitHub's errors may pass (`retries`), in GitHub's words and
ours (`errors`, `text`)."""
