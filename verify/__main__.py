"""``python -m verify``: the verification report over every registered estimator;
``python -m verify golden DIR``: golden vectors for ports (:mod:`verify.golden`)."""

import sys

if sys.argv[1:2] == ["golden"]:  # a subcommand, dispatched before the report's own parser
    from .golden import main as golden_main

    sys.exit(golden_main(sys.argv[2:]))

from .report import main  # noqa: E402

sys.exit(main())
