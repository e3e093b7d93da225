"""Helpers every app uses: prepared SQL, the SQLite backend, write steps, serializer and form bases,
the API's authentication, permissions, parsers and error shape, and the request guards.

It imports no app of the project (tests/core/test_imports.py), so changing an app never changes
another app's behaviour through here. Uses of framework internals live in core/internals/.
"""
