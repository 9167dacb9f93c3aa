"""The ``infinitetalk`` command line."""
