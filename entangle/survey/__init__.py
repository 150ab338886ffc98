"""The human rating study: serve the stimuli to raters (web app), store every answer at once, export for `--norms`.

Modules: `materials` (question and check texts), `design` (balanced between-participant assignment and trial
plans), `store` (SQLite, one transaction per answer), `web` (the Starlette app), `export` (the two CSV files),
`quality` (exclusion rules and reliability), `simulate` (simulated raters, for tests and demos only).
Importing this package does not import the web framework.
"""
