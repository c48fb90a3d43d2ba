"""``python -m monitor`` runs the command line."""

from monitor import paused_gc

with paused_gc():  # the start-up imports
    from monitor.cli import main

raise SystemExit(main())
