"""Cluster and command-line plumbing shared by the fixtures, the testbed and the load generator; imports nothing of ours."""
