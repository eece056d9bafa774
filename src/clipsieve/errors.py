"""The base class of errors a user can cause.

Anything derived from :class:`UserError` is printed by the command line as one red line (its
message must name the thing at fault and the fix) with exit code 2, never as a traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake the user can fix: bad path, bad config value, unusable run folder, ..."""
