"""``python -m aejax COMMAND [flags]``: the `aejax` command (`aejax.commands`)."""

import sys

from aejax.commands import main

sys.exit(main())
