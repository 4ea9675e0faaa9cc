"""The one base of every error a user can fix.

Each stage raises a subclass whose message names the problem and the fix; jobs end on them with
one line (``resstream.workflow.job_runner.script_main``) instead of a traceback.  Kept free of heavy imports so
every job can catch them without loading torch extensions it does not need.
"""


class UserError(Exception):
    """A problem in the input or settings; the message says what to change."""


class ConfigError(UserError, ValueError):
    """A configuration problem; the message starts with the offending key."""
