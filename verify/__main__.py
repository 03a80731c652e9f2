"""``python -m verify``: the verification report over every registered estimator."""

import sys

from .report import main

sys.exit(main())
