"""``python -m sdescore``: the same as the ``sdescore`` command."""
import sys

from .cli import main

sys.exit(main())
