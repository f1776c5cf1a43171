"""Example datasets and algorithms that really run on the cluster (tests, demos).

``datasets`` generates inputs by name without any file; ``algorithms`` holds
small block algorithms written to the element's interface (see
bridge.sbatch_scripts.element).
"""
