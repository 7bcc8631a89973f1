"""The `nbjobs` console script (also `python -m nbjobs`): a store from a terminal.

The only package that prints. Same store, same semantics as the library:

    nbjobs ls --status failed            nbjobs show fit-10k       nbjobs logs ID --follow
    nbjobs retry fit-10k                 nbjobs cancel ID          nbjobs resume
    nbjobs purge --older-than 7d         nbjobs stats              nbjobs --json ls
    nbjobs worker --workers 4 --idle-timeout 600
    nbjobs schedules                     nbjobs schedules pause NAME   (resume, rm)

Exit codes: 0 done, 1 the operation failed (no such job, a job that failed, ...),
2 a usage error, 130 interrupted by Ctrl-C. The entry point is `nbjobs.cli.entry:main`.
"""
