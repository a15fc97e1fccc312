"""orgsync: user records replicated into organization memberships, on AWS and on one laptop."""

__version__ = "0.1.0"
