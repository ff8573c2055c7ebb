"""The side-by-side benchmark: rexecutor and its peers (pgqueuer, oban-py, awa-pg,
procrastinate) measured in one run on the same PostgreSQL server. See bench/README.md, "Peers".

Run with ``python -m bench.peers``. Each peer lives in its own virtual environment under
``.bench-peers/`` (bench/peers/venvs.py) and is driven through its public API by
``bench/peers/driver.py`` running in that environment; this package's other modules run in
the project's environment.
"""
