"""What the ledger says about players and judges: statistics (`stats`), leaderboards, judge
metrics and exports (`leaderboard`), per-tournament reports (`tournament`)."""
