"""One guarded attempt at a torchvision download, bounded in time and never raising.

torchvision's downloads use urllib without a timeout, so an offline machine behind a silent
firewall would hang; a default socket timeout bounds every connect and read. The caller turns
a failure into a UserError that says how to get the files by hand.
"""

import socket
from collections.abc import Callable

TIMEOUT_SECONDS = 10.0


def attempt_download(download: Callable[[], object]) -> str | None:
    """Run `download`; None on success, else why it failed, on one line (torchvision's messages span several)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(TIMEOUT_SECONDS)
    try:
        download()
    # Any failure (DNS, refused, timeout, HTTP error, checksum mismatch, full disk) means the same
    # thing here: the data is not available, and the user gets the manual fix.
    except Exception as err:
        return " ".join(str(err).split()) or type(err).__name__
    finally:
        socket.setdefaulttimeout(previous)
    return None
