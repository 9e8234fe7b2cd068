"""`python -m napshare.tracker`: the same as the napshare-tracker command."""

from napshare.tracker.cli import main

raise SystemExit(main())
