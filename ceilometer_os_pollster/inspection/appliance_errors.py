"""How the appliance fails: ``ApplianceError``, whose ``reason`` is short
and safe to publish, and ``short_error``, which makes a libguestfs error
such a reason (no key, no private path, no guest control characters).
"""

import re

from ceilometer_os_pollster import sanitize

MAX_REASON = 200

_KEY_LIKE = re.compile(r'(key|secret|password)=\S*', re.IGNORECASE)


class ApplianceError(Exception):
    """An inspection that could not be completed; ``reason`` is public."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = sanitize.clean_text(reason, MAX_REASON)


def short_error(exc, private_dir=''):
    """The first line of a libguestfs error, made safe for a reason.

    Our temporary directory is replaced by '...', anything looking like
    ``key=...`` is blanked (belt and braces: no key is ever passed).
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
    if private_dir:
        text = text.replace(private_dir, '...')
    text = _KEY_LIKE.sub(r'\1=***', text)
    text = text or type(exc).__name__
    return sanitize.clean_text(text, MAX_REASON)
