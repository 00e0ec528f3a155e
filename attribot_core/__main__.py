"""``python -m attribot_core`` is the ``attribot`` command."""

import sys

from .cli import main

sys.exit(main())
