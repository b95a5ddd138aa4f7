"""The ``snapvault`` command line: a thin layer over the library.

Only this package reads environment variables, prompts, prints, and chooses exit codes.
"""
