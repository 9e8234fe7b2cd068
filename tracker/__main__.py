"""`python -m tracker`: the same as the napshare-tracker command."""

from tracker.cli import main

raise SystemExit(main())
