"""Level 5, domain: the ``lsio`` command-line tool."""
