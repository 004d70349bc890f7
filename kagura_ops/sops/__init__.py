"""The SOPS encrypted-file format."""
