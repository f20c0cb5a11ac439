"""Exporters that read the policies' counters when scraped (``prometheus``)."""
