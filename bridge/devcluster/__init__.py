"""The local single-host Slurm cluster for development, tests, the demo and the benchmarks.

Not part of the product's path: the bridge talks to any cluster through
bridge.slurm_client; this package only brings a real one up on loopback
(Debian's Slurm 22.05, munge, slurmdbd on MariaDB) and down again.
"""
