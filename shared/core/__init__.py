"""The functional core: plain data and pure decisions, no I/O."""
