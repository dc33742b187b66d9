"""User data: upload storage and table preparation."""
