"""The core of SRE Gates (pure decisions) and its adapters to Azure."""
