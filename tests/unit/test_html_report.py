"""The HTML report: a self-contained, escaped, deterministic page built from results alone."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from fakes import BOT, ME, bots, mine, step

from matrix_bot_tester.html_report import render
from matrix_bot_tester.matching import Message, text_diff
from matrix_bot_tester.result import (
    ConversationResult,
    Failure,
    Outcome,
    TranscriptEntry,
)

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert("x")</script>&amp;'


def passed() -> ConversationResult:
    steps = [
        step(0, 2, "!ping", "pong", Outcome.PASSED),
        step(1, 4, "!echo hi", "hi", Outcome.PASSED),
    ]
    steps[0].received, steps[0].latency = bots("pong"), 0.042
    steps[1].received, steps[1].latency = bots("hi"), 0.120
    return ConversationResult(
        script_path="convos/ping.yaml",
        name="ping",
        role="client",
        user_id=ME,
        partner=BOT,
        room_id="!abc:example.org",
        outcome=Outcome.PASSED,
        started_at="2026-01-01T00:00:00+00:00",
        duration=0.25,
        steps=steps,
        transcript=[
            TranscriptEntry(0.010, "sent", mine("!ping"), 0),
            TranscriptEntry(0.052, "received", bots("pong"), 0),
            TranscriptEntry(0.060, "received", bots("typing… (ignored)"), 1),
            TranscriptEntry(0.070, "sent", mine("!echo hi"), 1),
            TranscriptEntry(0.190, "received", bots("hi (edited)"), 1),
            TranscriptEntry(0.200, "received", bots("and one more"), None),
        ],
    )


def failed() -> ConversationResult:
    steps = [
        step(0, 2, "!ping", "pong", Outcome.PASSED),
        step(1, 4, "!shout", "PONG", Outcome.FAILED),
        step(2, 6, "bye", None, Outcome.NOT_RUN),
    ]
    steps[0].received, steps[0].latency = bots("pong"), 0.030
    steps[1].received, steps[1].latency = bots("pong"), 0.055
    return ConversationResult(
        script_path="convos/shout.yaml",
        name="shout",
        role="client",
        user_id=ME,
        partner=BOT,
        room_id="!def:example.org",
        outcome=Outcome.FAILED,
        duration=2.11,
        steps=steps,
        transcript=[
            TranscriptEntry(0.010, "sent", mine("!ping"), 0),
            TranscriptEntry(0.040, "received", bots("pong"), 0),
            TranscriptEntry(0.061, "sent", mine("!shout"), 1),
            TranscriptEntry(0.116, "received", bots("pong"), 1),
        ],
        failure=Failure(
            step_index=1,
            line=4,
            reason="wrong reply",
            expected="PONG",
            received=bots("pong"),
            waited=0.055,
            diff=text_diff("PONG", "pong"),
            problems=("body: expected 'PONG', got 'pong'",),
        ),
    )


def errored() -> ConversationResult:
    return ConversationResult(
        script_path="convos/down.yaml",
        name="down",
        role="client",
        outcome=Outcome.ERROR,
        failure=Failure(None, None, "logging in: cannot reach the homeserver"),
    )


def results() -> list[ConversationResult]:
    return [passed(), failed(), errored()]


def page(results_: list[ConversationResult] | None = None) -> ET.Element:
    """The report, parsed as XML: it must be well-formed."""
    text = render(results() if results_ is None else results_, 2.5, 1)
    return ET.fromstring(text)


def text_of(element: ET.Element) -> str:
    return "".join(element.itertext())


def by_class(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iter(tag) if css in (e.get("class") or "").split()]


def section(root: ET.Element, number: int) -> ET.Element:
    found = [e for e in root.iter("section") if e.get("id") == f"conversation-{number}"]
    assert len(found) == 1
    return found[0]


class Tags(HTMLParser):
    """Every start tag and all text, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def tokens(text: str) -> Tags:
    parser = Tags()
    parser.feed(text)
    parser.close()
    return parser


# ---------------------------------------------------------------- the page


def test_page_is_well_formed_html_with_a_doctype_and_a_title() -> None:
    text = render(results(), 2.5, 1)
    assert text.startswith("<!DOCTYPE html>\n")
    root = ET.fromstring(text)
    assert root.tag == "html"
    title = root.find("head/title")
    assert title is not None
    assert title.text == "matrix-bot-tester: 1 passed, 1 failed, 1 error"


def test_page_loads_nothing_from_elsewhere() -> None:
    text = render(results(), 2.5, 1)
    parsed = tokens(text)
    assert "script" not in parsed.tags
    assert not {"link", "img", "iframe", "object", "embed"} & set(parsed.tags)
    assert all(name not in ("src", "srcset") for name, _ in parsed.attrs)
    hrefs = [value or "" for name, value in parsed.attrs if name == "href"]
    assert hrefs and all(href.startswith("#") for href in hrefs)
    assert "url(" not in text
    assert "@import" not in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_header_has_the_totals_duration_and_exit_code() -> None:
    root = page()
    totals = {li.get("id"): text_of(li) for li in root.iter("li") if li.get("id")}
    assert totals["total-passed"] == "1passed"
    assert totals["total-failed"] == "1failed"
    assert totals["total-error"] == "1error"
    assert totals["total-interrupted"] == "0interrupted"
    assert totals["total-not-run"] == "0not run"
    assert totals["total-duration"] == "2.50 sin all"
    assert totals["exit-code"] == "1exit code"


def test_each_conversation_has_a_section_with_its_facts() -> None:
    root = page()
    sections = [s for s in root.iter("section") if "conversation" in (s.get("class") or "")]
    assert [s.get("data-outcome") for s in sections] == ["passed", "failed", "error"]
    facts = section(root, 1).find("dl")
    assert facts is not None
    names = [text_of(e) for e in facts.iter("dt")]
    pairs = dict(zip(names, [text_of(e) for e in facts.iter("dd")], strict=True))
    assert pairs["script"] == "convos/ping.yaml"
    assert pairs["room"] == "!abc:example.org"
    assert pairs["duration"] == "0.25 s"
    assert pairs["outcome"] == "passed"
    assert pairs["steps"] == "2/2 passed"


# ------------------------------------------------------------ the transcript


def test_transcript_is_bubbles_per_sender_in_order() -> None:
    transcript = section(page(), 1).find(".//ol")
    assert transcript is not None and transcript.get("class") == "transcript"
    bubbles = list(transcript)
    sides = [li.get("class", "").split()[0] for li in bubbles]
    assert sides == ["sent", "received", "received", "sent", "received", "received"]
    bodies = [text_of(b) for li in bubbles for b in by_class(li, "div", "body")]
    assert bodies == ["!ping", "pong", "typing…", "!echo hi", "hi", "and one more"]
    first_meta = text_of(by_class(bubbles[0], "div", "meta")[0])
    assert first_meta == f"{ME} · 0.010 s · step 1 · m.text"
    assert text_of(by_class(bubbles[4], "div", "meta")[0]).startswith(f"{BOT} · 0.190 s · step 2")


def test_ignored_edited_and_unexpected_messages_are_marked() -> None:
    bubbles = list(section(page(), 1).iter("li"))
    notes = [[text_of(n) for n in by_class(li, "span", "note")] for li in bubbles]
    assert notes == [[], [], ["ignored"], [], ["edited"], ["unexpected"]]
    assert "no step" in text_of(bubbles[5])


def test_the_failing_step_is_highlighted_in_the_transcript() -> None:
    conversation = section(page(), 2)
    failing = by_class(conversation, "li", "failing")
    assert [text_of(by_class(li, "div", "body")[0]) for li in failing] == ["!shout", "pong"]
    assert {li.get("data-step") for li in failing} == {"2"}
    transcript = conversation.find(".//ol")
    assert transcript is not None
    items = list(transcript)
    assert items[-1].get("class") == "marker"  # after the failing step's last message
    assert text_of(items[-1]) == "✗ step 2 failed: wrong reply"
    assert not by_class(section(page(), 1), "li", "failing")


def test_the_failure_box_has_reason_expected_received_why_and_diff() -> None:
    box = by_class(section(page(), 2), "div", "failure")
    assert len(box) == 1
    failure = box[0]
    assert text_of(by_class(failure, "p", "reason")[0]) == "step 2: wrong reply"
    assert "convos/shout.yaml:4" in text_of(failure)
    assert text_of(by_class(failure, "dd", "expected")[0]) == "PONG"
    assert text_of(by_class(failure, "dd", "received")[0]) == f"pong from {BOT} (m.notice)"
    assert [text_of(li) for li in failure.iter("li")] == ["body: expected 'PONG', got 'pong'"]
    assert "0.055 s" in text_of(failure)
    diff = by_class(failure, "pre", "diff")[0]
    assert text_of(diff) == text_diff("PONG", "pong")
    assert [text_of(s) for s in by_class(diff, "span", "del")] == ["- expected: 'PONG'"]
    assert [text_of(s) for s in by_class(diff, "span", "add")] == ["+ received: 'pong'"]


def test_a_silent_bot_shows_nothing_received_and_the_marker_after_our_send() -> None:
    silent = ConversationResult(
        script_path="s.yaml",
        name="silent",
        role="client",
        outcome=Outcome.FAILED,
        steps=[step(0, 2, "!ping", "pong", Outcome.FAILED)],
        transcript=[TranscriptEntry(0.01, "sent", mine("!ping"), 0)],
        failure=Failure(0, 2, "no reply within 2 s", expected="pong", waited=2.0),
    )
    root = page([silent])
    assert text_of(by_class(root, "dd", "received")[0]) == "nothing"
    transcript = root.find(".//ol[@class='transcript']")
    assert transcript is not None
    assert [li.get("class") for li in transcript] == ["sent failing", "marker"]


def test_an_infrastructure_error_shows_the_opening_and_no_transcript() -> None:
    conversation = section(page(), 3)
    assert text_of(by_class(conversation, "p", "reason")[0]) == (
        "opening: logging in: cannot reach the homeserver"
    )
    assert "No messages." in text_of(conversation)


def test_the_steps_table_shows_every_steps_latency_and_the_failing_row() -> None:
    conversation = section(page(), 2)
    rows = [tr for tr in conversation.iter("tr") if tr.get("data-step")]
    latencies = [text_of(by_class(tr, "td", "latency")[0]) for tr in rows]
    assert latencies == ["30 ms", "55 ms", "—"]
    assert [tr.get("class") for tr in rows] == [None, "failing", None]
    cells = [text_of(td) for td in rows[1]]
    assert cells == ["2", "4", "!shout", "PONG", "pong", "failed", "55 ms"]


# ----------------------------------------------------------------- the chart


def test_the_chart_has_one_labelled_bar_per_step_with_a_latency() -> None:
    root = page()
    svg = root.find(f".//{SVG}svg")
    assert svg is not None
    bars = list(svg.iter(f"{SVG}rect"))
    assert len(bars) == 4  # ping: 2, shout: 2 (the step not run has none), down: 0
    widths = [float(bar.get("width", "0")) for bar in bars]
    assert max(widths) == widths[1]  # 120 ms is the longest
    groups = list(svg.iter(f"{SVG}g"))
    labels = [[t.text for t in g.iter(f"{SVG}text")] for g in groups]
    assert labels == [
        ["ping · step 1", "42 ms"],
        ["ping · step 2", "120 ms"],
        ["shout · step 1", "30 ms"],
        ["shout · step 2", "55 ms"],
    ]
    assert [bar.get("class") for bar in bars] == ["bar", "bar", "bar", "bar failed"]


def test_no_chart_without_latencies_and_an_empty_run_renders() -> None:
    root = page([errored()])
    assert root.find(f".//{SVG}svg") is None
    assert "No step has a latency." in text_of(root)
    empty = page([])
    assert "No conversations." in text_of(empty)


# ------------------------------------------------------------- escaping, bytes


def evil() -> ConversationResult:
    result = failed()
    result.name = EVIL
    result.script_path = f"convos/{EVIL}.yaml"
    result.room_id = EVIL
    result.warnings = [EVIL]
    result.steps[1].send = EVIL
    result.steps[1].received = bots(EVIL)
    result.transcript.append(TranscriptEntry(0.2, "received", bots(EVIL), None))
    result.transcript.append(TranscriptEntry(0.3, "sent", Message("$x", EVIL, EVIL, EVIL, 3), 2))
    result.failure = Failure(
        step_index=1,
        line=4,
        reason=EVIL,
        expected=EVIL,
        received=bots(EVIL),
        diff=text_diff("PONG", EVIL),
        problems=(EVIL,),
    )
    return result


def test_everything_user_provided_is_escaped() -> None:
    text = render([evil()], 1.0, 1)
    parsed = tokens(text)
    assert "script" not in parsed.tags
    assert "<script" not in text
    assert "&lt;script&gt;" in text
    assert "&amp;amp;" in text  # a literal "&amp;" stays literal
    all_text = "".join(parsed.text)
    assert all_text.count(EVIL) >= 10  # the reader still sees exactly what was sent
    root = ET.fromstring(text)
    bodies = [text_of(b) for b in by_class(root, "div", "body")]
    assert bodies.count(EVIL) == 2


def test_quotes_are_escaped_so_no_value_can_leave_an_attribute() -> None:
    result = passed()
    result.name = 'x" onmouseover="alert(1)'
    text = render([result], 1.0, 0)
    assert 'onmouseover="' not in text
    assert "x&quot; onmouseover=&quot;alert(1)" in text
    assert all(name != "onmouseover" for name, _ in tokens(text).attrs)


def test_control_characters_keep_the_page_well_formed() -> None:
    result = passed()
    result.transcript[1] = TranscriptEntry(0.05, "received", bots("\x1b[31mred\x1b[0m\x00"), 0)
    root = page([result])
    bodies = [text_of(b) for b in by_class(root, "div", "body")]
    assert bodies[1] == "\\x1b[31mred\\x1b[0m\\x00"


def test_the_same_input_gives_the_same_page() -> None:
    first = render(results(), 2.5, 1)
    again = render(copy.deepcopy(results()), 2.5, 1)
    assert first == again
    assert render(results(), 2.5, 1) == first


def test_rendering_does_not_change_the_results() -> None:
    before = results()
    snapshot = copy.deepcopy(before)
    render(before, 2.5, 1)
    assert before == snapshot
