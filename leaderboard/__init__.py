"""alignbench's leaderboard: submissions, validation, verification and the static site."""
