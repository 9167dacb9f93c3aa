"""``python -m infinitetalk.cli``: the same as the ``infinitetalk`` command."""

from infinitetalk.cli.main import main

main()
