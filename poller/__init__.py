"""The poller: Slurm states (squeue first, sacct for what it forgot) drive BEAT's on_split_* callbacks."""
