"""Each use of a framework's private API, one small module per internal.

A module names the versions it was checked against and offers a small named function, so the
rest of the code never spells a private attribute. tests/core/internals/ has a test per module
that fails when the internal changes shape: read them first when upgrading Django, DRF, asgiref,
openai or procrastinate.
"""
