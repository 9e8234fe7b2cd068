"""`python -m napshare.relay`: the same as the napshare-relay command."""

from napshare.relay.cli import main

raise SystemExit(main())
