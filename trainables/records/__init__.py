"""What a sweep keeps: every file name, storage on a folder or a URI, results tables, artifacts."""
