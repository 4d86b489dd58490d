"""The error a user can fix: bad files, missing paths, wrong shapes, outputs that are not ours.

`polyroute <step>` and the Snakemake rules print a `UserError` as one line (it names the file, record
or key and says what to do); any other exception is a bug and keeps its traceback. It is a
ValueError, so code that already catches bad input as ValueError keeps working.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input or files, reported as one line that says what to do."""
