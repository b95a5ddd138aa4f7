"""The ``snapvault`` command line: a thin layer over the library.

Only this package reads environment variables, prompts, prints, and chooses exit codes.
"""

import os

# Every command validates the repository's records with pydantic, whose first model scans the
# metadata of every installed package for pydantic plugins (observability hooks a command line
# has no use for): about 10 ms of each command's start. Set before anything imports pydantic;
# a user who wants plugins in the CLI sets the variable to their names.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
