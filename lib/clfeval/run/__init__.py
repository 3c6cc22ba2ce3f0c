"""The steps of an evaluation run, which ``clfeval.pipeline`` sequences.

``context``: what every step is given (session, config, task, console) and the
run's result. ``plan``: which inputs and days a run reads. ``states``: stored
daily states and the rollups summed from them. ``publish``: the run's windows
derived and written. ``commit``: the run's row in ``runs``, retries of commits
that lost a race, stale-read checks. ``monitoring``: coverage, rejected-rows,
drift and alert rows.
"""
