"""Publish: tables conformed to their contracts, the snapshot version, the manifest and commit, `latest/`."""
