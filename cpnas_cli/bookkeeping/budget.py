"""How many training epochs fit a time budget (`train.minutes`). Torch-free.

A CPU run with a budget, rather than an epoch count, finishes in time on a quiet machine and on a
busy one alike: after every epoch the plan becomes the epochs done plus as many more as the
remaining minutes hold at the mean epoch time so far (training and test pass together). The plan
only ever shrinks, so the cosine learning rate, which is laid over the planned epochs, never
climbs back; the first epoch runs under the largest plan (`train.epochs`), where a cosine is
still flat.
"""

import math


def epochs_that_fit(done: int, elapsed: float, minutes: float | None, planned: int) -> int:
    """The new plan after `done` epochs took `elapsed` seconds: at most `planned`, at least `done`."""
    if minutes is None or done == 0:
        return planned
    more = math.floor((minutes * 60 - elapsed) / (elapsed / done))
    return max(done, min(planned, done + more))
