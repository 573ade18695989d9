"""``vmforge doctor``: check a host for what a spec needs, before anything is built.

Each check is a small function reading the host below an injectable root (:mod:`.hostfs`)
and returning pass / warn / fail / skip with the evidence and the exact fix (:mod:`.model`);
:mod:`.runner` picks and orders them for a spec; :mod:`.boottest` boots the probe guest.
"""
