"""jitadmin: just-in-time admin access for MSPs."""

__version__ = "0.1.0"
