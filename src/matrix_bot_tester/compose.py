"""Pure: the event content a step's action sends, built the way Matrix clients build it.

Markdown is rendered with markdown-it (CommonMark, as Element does); HTML gets
a plain-text ``body`` beside it; replies, threads and mentions get the
relations and ``m.mentions`` of the current spec (no reply fallbacks, which
the spec has retired).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from matrix_bot_tester.language import Edit, React, SendMessage
from matrix_bot_tester.matching import Event, html_to_text, thread_root

HTML_FORMAT = "org.matrix.custom.html"

if TYPE_CHECKING:
    from markdown_it import MarkdownIt


@cache
def _markdown() -> MarkdownIt:
    """The renderer, made on first use: most suites send no Markdown, and loading it costs."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark")


class UnknownMessage(KeyError):
    """A step names a message that no earlier step sent or received."""


def event_id_of(name: str, named: Mapping[str, Event]) -> str:
    if name not in named:
        raise UnknownMessage(name)
    return str(named[name].get("event_id", ""))


def _text_content(text: str | None, markdown: str | None, html: str | None) -> dict[str, Any]:
    if markdown is not None:
        rendered = _markdown().render(markdown).strip()
        # Markdown that is just one plain paragraph sends plain text, as Element does.
        if rendered == f"<p>{markdown.strip()}</p>":
            return {"body": markdown}
        return {"body": markdown, "format": HTML_FORMAT, "formatted_body": rendered}
    if html is not None:
        return {"body": html_to_text(html), "format": HTML_FORMAT, "formatted_body": html}
    return {"body": text or ""}


def message_content(spec: SendMessage | str, named: Mapping[str, Event]) -> dict[str, Any]:
    """Content of an ``m.room.message`` for a text, Markdown or HTML send."""
    if isinstance(spec, str):
        return {"msgtype": "m.text", "body": spec}
    content: dict[str, Any] = {"msgtype": spec.msgtype or "m.text"}
    content.update(_text_content(spec.text, spec.markdown, spec.html))
    _add_relations(content, spec, named)
    return content


def media_msgtype(mimetype: str) -> str:
    major = mimetype.split("/", 1)[0]
    return {"image": "m.image", "audio": "m.audio", "video": "m.video"}.get(major, "m.file")


def guess_mimetype(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def file_content(
    spec: SendMessage, url: str, size: int, mimetype: str, filename: str, named: Mapping[str, Event]
) -> dict[str, Any]:
    """Content of a media message whose file is already uploaded to ``url``."""
    content: dict[str, Any] = {
        "msgtype": spec.msgtype or media_msgtype(mimetype),
        "body": filename,
        "filename": filename,
        "url": url,
        "info": {"mimetype": mimetype, "size": size},
    }
    _add_relations(content, spec, named)
    return content


def _add_relations(content: dict[str, Any], spec: SendMessage, named: Mapping[str, Event]) -> None:
    if spec.thread is not None:
        # A message already in a thread stands for its thread: Matrix allows no
        # thread inside a thread.
        named_id = event_id_of(spec.thread, named)
        root = thread_root(named.get(spec.thread) or {}) or named_id
        relates: dict[str, Any] = {"rel_type": "m.thread", "event_id": root}
        # In a thread, a reply points at its message; otherwise clients that know no
        # threads fall back to the message the script named.
        reply_to = event_id_of(spec.reply_to, named) if spec.reply_to else named_id
        relates["m.in_reply_to"] = {"event_id": reply_to}
        relates["is_falling_back"] = spec.reply_to is None
        content["m.relates_to"] = relates
    elif spec.reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": event_id_of(spec.reply_to, named)}}
    if spec.mentions is not None:
        content["m.mentions"] = {"user_ids": list(spec.mentions)}


def reaction_content(spec: React, named: Mapping[str, Event]) -> dict[str, Any]:
    return {
        "m.relates_to": {
            "rel_type": "m.annotation",
            "event_id": event_id_of(spec.to, named),
            "key": spec.key,
        }
    }


def edit_content(spec: Edit, named: Mapping[str, Event]) -> dict[str, Any]:
    """An ``m.replace`` edit: the new content, and a ``* ``-prefixed fallback body."""
    original = named.get(spec.message)
    new = _text_content(spec.text, spec.markdown, spec.html)
    msgtype = "m.text"
    if original is not None:
        msgtype = str((original.get("content") or {}).get("msgtype") or "m.text")
    new_content = {"msgtype": msgtype, **new}
    fallback = {"msgtype": msgtype, **{k: v for k, v in new.items()}}
    fallback["body"] = f"* {new['body']}"
    if "formatted_body" in fallback:
        fallback["formatted_body"] = f"* {fallback['formatted_body']}"
    return {
        **fallback,
        "m.new_content": new_content,
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id_of(spec.message, named)},
    }
