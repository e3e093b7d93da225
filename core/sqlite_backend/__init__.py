"""The SQLite database backend: settings name it as DATABASES["default"]["ENGINE"] = "core.sqlite_backend"."""
