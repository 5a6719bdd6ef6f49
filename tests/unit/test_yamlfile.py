"""The YAML reader: libyaml's fast parser and PyYAML's own give one and the same document.

Scripts are parsed by libyaml where PyYAML has it (a suite loads hundreds),
by the pure-Python parser otherwise and for every file libyaml refuses, so
that error messages keep their words. Both must place every value alike.
"""

from __future__ import annotations

from unittest import mock

import pytest
import yaml

from matrix_bot_tester import yamlfile
from matrix_bot_tester.errors import InputError

SAMPLES = {
    "script": (
        "room_to_connect: '!dm'\nmessages:\n  - send: '!echo héllo 😀'\n"
        "    expect:\n      regex: 'h.llo (?P<face>\\S+)'\n  - send: 12\n    expect: '12'\n"
    ),
    "crlf": (
        "user: '@a:b'\r\nmessages:\r\n  - send: 世界\r\n"
        "    expect: |\r\n      two\r\n      lines\r\n"
    ),
    "anchors": "a: &x {q: 1}\nb: *x\nc: {<<: *x, r: 2}\nd: [1, 'two', \"三\"]\n",
    "escapes": 'a: "\\u00e9 and \\U0001F600"\nb: >\n  folded\n  text\n',
    "byte order mark": "\ufeffa: 1\nb: [x, y]\n",
}


def _parsed_by(loader: type | None, text: str) -> yamlfile.LocatedDocument:
    with mock.patch.object(yamlfile, "_FastLoader", loader):
        return yamlfile.parse(text, "x.yaml")


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml")
@pytest.mark.parametrize("text", SAMPLES.values(), ids=SAMPLES.keys())
def test_both_parsers_give_the_same_data_and_positions(text: str) -> None:
    fast, slow = _parsed_by(yaml.CSafeLoader, text), _parsed_by(None, text)
    assert fast.data == slow.data
    assert fast.values == slow.values
    assert fast.keys == slow.keys
    assert fast.texts == slow.texts
    assert slow.values  # positions were recorded at all


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml")
def test_libyaml_is_used_when_there() -> None:
    with mock.patch.object(yamlfile, "_LocatingLoader", side_effect=AssertionError("slow path")):
        document = yamlfile.parse("a: [1, 2]\n", "x.yaml")
    assert document.data == {"a": [1, 2]}


@pytest.mark.parametrize("loader", [getattr(yaml, "CSafeLoader", None), None])
def test_a_refused_file_gets_the_same_message_either_way(loader: type | None) -> None:
    with pytest.raises(InputError) as caught:
        _parsed_by(loader, "a: [1, 2\nb: 3\n")
    assert caught.value.one_line() == (
        "x.yaml:2:2: invalid YAML: expected ',' or ']', but got ':'"
        " (in a [...] list that starts at 1:4)"
    )
