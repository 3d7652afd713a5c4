"""Foundation shared by every layer: errors, atomic writes, JSON values, names, failure records."""
