"""Re-encrypt every stored API key with the newest FIELD_ENCRYPTION_KEY.

Rotation: put the new key first, keep the old ones after it
(FIELD_ENCRYPTION_KEY=new,old), run this command, then drop the old keys.
"""
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from llm import crypto
from llm.models import Endpoint


class Command(BaseCommand):
    help = "Re-encrypt the stored endpoint API keys with the first FIELD_ENCRYPTION_KEY."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = 0
        unreadable: list[str] = []
        with transaction.atomic():
            for endpoint in Endpoint.objects.select_for_update().exclude(api_key_encrypted=""):
                try:
                    token = crypto.rotate(endpoint.api_key_encrypted)
                except ValueError:
                    unreadable.append(endpoint.name)
                    continue
                Endpoint.objects.filter(pk=endpoint.pk).update(api_key_encrypted=token)
                rotated += 1
            if unreadable:
                # Nothing changes unless every key can be read: a half-rotated database is worse.
                transaction.set_rollback(True)
        if unreadable:
            raise CommandError(
                f"{len(unreadable)} API key(s) cannot be decrypted with any configured key "
                f"({', '.join(unreadable)}); add the key they were encrypted with to FIELD_ENCRYPTION_KEY. "
                "Nothing was changed."
            )
        self.stdout.write(f"Re-encrypted {rotated} API key(s) with the newest key.")
