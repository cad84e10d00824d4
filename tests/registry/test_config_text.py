"""How config problems quote what they name: a TOML basic string, without json."""

from __future__ import annotations

import json
import tomllib

from hypothesis import given
from hypothesis import strategies as st

from registry._config_text import quote


def test_every_character_is_quoted_as_json_quotes_it() -> None:
    for code in range(0x110000):
        text = chr(code)
        assert quote(text) == json.dumps(text, ensure_ascii=False), hex(code)


# DEL and lone surrogates are shown as they are, as json shows them (quote words messages).
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f")))
def test_a_quoted_string_is_the_toml_string_of_itself(text: str) -> None:
    assert tomllib.loads(f"key = {quote(text)}")["key"] == text
