"""``python -m bench.peers``: see bench/peers/run.py."""

from bench.peers.run import main

raise SystemExit(main())
