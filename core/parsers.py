"""DRF's JSON parser, except that a body nested too deeply is a 400, not a RecursionError (500), and
text with a lone surrogate is a 400 naming the field (it would be stored, then break every page showing it)."""
from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

from core.surrogates import MESSAGE, surrogate_path


class NestingSafeJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc
        where = surrogate_path(data)
        if where:
            raise ValidationError({where: [MESSAGE]})
        return data
