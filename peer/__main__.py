"""`python -m napshare.peer`: the same as `napshare-peer`."""

import sys

from napshare.peer.ui.cli import main

sys.exit(main())
