"""Fenced leases (spec 002): every Run is executed under one. The claim is the Run's first
event (`libs.domain.run.Run.start` with a `Claim`); this package holds what is not an event:
the heartbeats that move a lease's end, the checks every holder's call passes (`fence`), and
the clock they share. Used by the executor and the runtime service, which never import each other.
"""
