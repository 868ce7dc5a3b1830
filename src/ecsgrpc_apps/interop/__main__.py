"""``python -m ecsgrpc_apps.interop``: the case runner (see :mod:`.client`)."""

import sys

from ecsgrpc_apps.interop.client import main

sys.exit(main())
