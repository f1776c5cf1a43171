"""The poller: sacct states drive BEAT's on_split_* callbacks."""
