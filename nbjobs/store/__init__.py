"""The storage layer: the folder, its tables and all their SQL, the writer thread, blob files."""
