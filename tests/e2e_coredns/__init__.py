"""End-to-end tests of domain-park workers behind CoreDNS (see README.md)."""
