"""`python -m peer`: the same as `napshare-peer`."""

import sys

from peer.cli import main

sys.exit(main())
