"""Adapters from the ports in `shared.ports` to Azure services (and SMTP)."""
