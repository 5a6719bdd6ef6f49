"""Text matchers, reply fallbacks, HTML normalisation and rendering: pure functions on text."""

from __future__ import annotations

import time

import pytest
from fakes import ALICE, event

from matrix_bot_tester import matching
from matrix_bot_tester.language import TextMatch
from matrix_bot_tester.matching import (
    TextVerdict,
    describe_text_match,
    html_mentions,
    html_to_text,
    normalize_html,
    strip_html_reply_fallback,
    strip_reply_fallback,
    text_matches,
)

# ------------------------------------------------------------------ exact


def test_plain_string_is_an_exact_match() -> None:
    assert text_matches("pong", "pong") == TextVerdict(ok=True, captures={}, explanation="")


def test_exact_mismatch_explains_expected_and_got() -> None:
    assert text_matches("pong", "PONG") == TextVerdict(
        ok=False, captures={}, explanation="expected 'pong', got 'PONG'"
    )


def test_exact_is_case_sensitive_by_default() -> None:
    assert text_matches(TextMatch(exact="pong"), "Pong").ok is False


def test_exact_is_whitespace_sensitive_by_default() -> None:
    assert text_matches("pong", "pong\n").ok is False


def test_exact_empty_text_matches_empty_text() -> None:
    assert text_matches("", "").ok is True


def test_exact_ignore_case() -> None:
    assert text_matches(TextMatch(exact="pong", ignore_case=True), "PoNG").ok is True


def test_ignore_case_folds_sharp_s() -> None:
    assert text_matches(TextMatch(exact="STRASSE", ignore_case=True), "straße").ok is True


def test_exact_normalize_whitespace_collapses_runs_and_trims_ends() -> None:
    spec = TextMatch(exact="a b c", normalize_whitespace=True)
    assert text_matches(spec, "  a \t b\n\nc\n").ok is True


def test_normalize_whitespace_applies_to_the_expected_text_too() -> None:
    spec = TextMatch(exact="a   b\n", normalize_whitespace=True)
    assert text_matches(spec, "a b").ok is True


def test_normalize_whitespace_does_not_remove_all_spaces() -> None:
    assert text_matches(TextMatch(exact="a b", normalize_whitespace=True), "ab").ok is False


def test_ignore_case_and_normalize_whitespace_combine() -> None:
    spec = TextMatch(exact="hello world", ignore_case=True, normalize_whitespace=True)
    assert text_matches(spec, " HELLO\n World ").ok is True


# ---------------------------------------------------------------- contains


def test_contains_matches_a_part() -> None:
    assert text_matches(TextMatch(contains="build"), "your build is ready").ok is True


def test_contains_mismatch_explains() -> None:
    verdict = text_matches(TextMatch(contains="done"), "working")
    assert verdict.explanation == "expected containing 'done', got 'working'"


def test_contains_is_case_sensitive_by_default() -> None:
    assert text_matches(TextMatch(contains="Build"), "your build").ok is False


def test_contains_ignore_case() -> None:
    assert text_matches(TextMatch(contains="BUILD", ignore_case=True), "your build").ok is True


def test_contains_normalize_whitespace() -> None:
    spec = TextMatch(contains="is ready", normalize_whitespace=True)
    assert text_matches(spec, "your build is\n  ready").ok is True


# ------------------------------------------------------------------- regex


def test_regex_full_match() -> None:
    assert text_matches(TextMatch(regex=r"\d+ results"), "3 results").ok is True


def test_regex_must_match_the_whole_text() -> None:
    assert text_matches(TextMatch(regex=r"\d+"), "found 3 results").ok is False


def test_regex_named_groups_are_captured() -> None:
    verdict = text_matches(
        TextMatch(regex=r"ticket #(?P<ticket>\d+) by (?P<who>\w+)"), "ticket #42 by bob"
    )
    assert verdict.captures == {"ticket": "42", "who": "bob"}


def test_regex_group_that_did_not_take_part_captures_empty_text() -> None:
    verdict = text_matches(TextMatch(regex=r"ok(?: (?P<note>.+))?"), "ok")
    assert verdict.captures == {"note": ""}


def test_regex_dot_matches_newlines() -> None:
    assert text_matches(TextMatch(regex=r"Status:.*three"), "Status: ok\none\nthree").ok is True


def test_regex_ignore_case() -> None:
    assert text_matches(TextMatch(regex=r"pong", ignore_case=True), "PONG").ok is True


def test_regex_normalize_whitespace_normalises_the_text_not_the_pattern() -> None:
    spec = TextMatch(regex=r"a b", normalize_whitespace=True)
    assert text_matches(spec, "  a\n\n b ").ok is True


def test_regex_mismatch_explains_with_the_pattern() -> None:
    verdict = text_matches(TextMatch(regex=r"\d+"), "none")
    assert verdict.explanation == "expected matching /\\d+/, got 'none'"


def test_regex_mismatch_captures_nothing() -> None:
    assert text_matches(TextMatch(regex=r"(?P<n>\d+)"), "none").captures == {}


# ------------------------------------------------------------------ one_of


def test_one_of_matches_any_option() -> None:
    assert text_matches(TextMatch(one_of=["hi", "hello"]), "hello").ok is True


def test_one_of_options_are_exact() -> None:
    assert text_matches(TextMatch(one_of=["hi", "hello"]), "hello there").ok is False


def test_one_of_mismatch_lists_the_options() -> None:
    verdict = text_matches(TextMatch(one_of=["hi", "hello"]), "hey")
    assert verdict.explanation == "expected one of 'hi', 'hello', got 'hey'"


def test_one_of_ignore_case() -> None:
    assert text_matches(TextMatch(one_of=["hi", "hello"], ignore_case=True), "HI").ok is True


def test_one_of_normalize_whitespace() -> None:
    spec = TextMatch(one_of=["good morning"], normalize_whitespace=True)
    assert text_matches(spec, "good\n morning").ok is True


# ------------------------------------------------------------- explanations


def test_explanation_shows_invisible_characters() -> None:
    explanation = text_matches("red", event("ansi")["content"]["body"]).explanation
    assert explanation == "expected 'red', got '\\x1b[31mred\\x1b[0m'"


def test_explanation_cuts_a_long_text() -> None:
    explanation = text_matches("short", "x" * 500).explanation
    assert explanation.endswith("…")
    assert len(explanation) < 120


def test_description_names_the_flags() -> None:
    spec = TextMatch(contains="a", ignore_case=True, normalize_whitespace=True)
    assert describe_text_match(spec) == "containing 'a' (ignore_case, normalize_whitespace)"


# ---------------------------------------------------------- reply fallbacks


def test_recorded_reply_fallback_is_stripped_from_the_body() -> None:
    assert strip_reply_fallback(event("reply")["content"]["body"]) == "hrm"


def test_multi_line_fallback_is_stripped_and_a_later_quote_kept() -> None:
    body = event("reply_multiline")["content"]["body"]
    assert strip_reply_fallback(body) == "**done**\n> not a fallback"


def test_fallback_line_of_a_lone_quote_mark_is_part_of_the_fallback() -> None:
    assert strip_reply_fallback("> <@a:b> one\n>\n> two\n\nanswer") == "answer"


def test_fallback_strips_only_one_blank_line() -> None:
    assert strip_reply_fallback("> <@a:b> q\n\n\nanswer") == "\nanswer"


def test_quote_without_a_blank_line_after_it_is_kept() -> None:
    assert strip_reply_fallback("> quoted\nanswer") == "> quoted\nanswer"


def test_message_that_is_only_a_quote_is_kept() -> None:
    assert strip_reply_fallback("> quoted") == "> quoted"


def test_quote_mark_without_a_space_is_not_a_fallback() -> None:
    assert strip_reply_fallback(">quoted\n\nanswer") == ">quoted\n\nanswer"


def test_quote_after_the_first_line_is_not_a_fallback() -> None:
    assert strip_reply_fallback("see:\n> quoted\n\nanswer") == "see:\n> quoted\n\nanswer"


def test_body_without_fallback_is_unchanged() -> None:
    assert strip_reply_fallback("plain answer") == "plain answer"


def test_recorded_html_reply_fallback_is_stripped() -> None:
    assert strip_html_reply_fallback(event("reply")["content"]["formatted_body"]) == "hrm"


def test_html_reply_fallback_with_a_multi_line_quote_is_stripped() -> None:
    html = event("reply_multiline")["content"]["formatted_body"]
    assert strip_html_reply_fallback(html).startswith("<p><strong>done</strong></p>\n")


def test_html_without_mx_reply_is_unchanged() -> None:
    html = event("html")["content"]["formatted_body"]
    assert strip_html_reply_fallback(html) == html


# ------------------------------------------------------------ normalize_html


def test_trailing_newline_after_a_paragraph_does_not_count() -> None:
    assert normalize_html("<p>x</p>\n") == normalize_html("<p>x</p>") == "<p>x</p>"


def test_newlines_between_blocks_do_not_count() -> None:
    recorded = event("html")["content"]["formatted_body"]
    compact = (
        "<p><strong>Status</strong>: all <em>good</em></p>"
        "<ul><li>one</li><li>two &amp; three</li></ul>"
    )
    assert normalize_html(recorded) == compact


def test_self_closing_br_equals_br() -> None:
    assert normalize_html("a<br/>b") == normalize_html("a<br />b") == "a<br>b"


def test_self_closed_non_void_element_is_opened_and_closed() -> None:
    assert normalize_html("<p/>") == "<p></p>"


def test_attributes_are_sorted_and_double_quoted() -> None:
    assert normalize_html("<a title='t' href=\"u\">x</a>") == '<a href="u" title="t">x</a>'


def test_attribute_without_value_gets_an_empty_value() -> None:
    assert normalize_html("<input disabled>") == '<input disabled="">'


def test_tag_names_are_lower_case() -> None:
    assert normalize_html("<P><B>x</B></P>") == "<p><b>x</b></p>"


def test_entities_are_re_escaped_one_way() -> None:
    assert normalize_html("it&#39;s &quot;ok&quot;") == normalize_html('it\'s "ok"')


def test_escaped_markup_in_text_stays_escaped() -> None:
    assert normalize_html("&lt;b&gt; &amp;") == "&lt;b&gt; &amp;"


def test_comments_are_dropped() -> None:
    assert normalize_html("<p>a<!-- note -->b</p>") == "<p>ab</p>"


def test_runs_of_white_space_in_text_collapse() -> None:
    assert normalize_html("<p>a  \n b</p>") == "<p>a b</p>"


def test_white_space_at_block_edges_is_trimmed() -> None:
    assert normalize_html("<p> x </p>") == "<p>x</p>"


def test_white_space_around_br_is_trimmed() -> None:
    assert normalize_html("a <br>\n b") == "a<br>b"


def test_space_between_inline_elements_is_kept() -> None:
    assert normalize_html("<b>a</b> <i>b</i>") == "<b>a</b> <i>b</i>"
    assert normalize_html("<b>a</b> <i>b</i>") != normalize_html("<b>a</b><i>b</i>")


def test_pre_content_is_kept_verbatim() -> None:
    assert (
        normalize_html("<pre><code>a\n  b\n</code></pre>\n") == "<pre><code>a\n  b\n</code></pre>"
    )


def test_different_markup_stays_different() -> None:
    assert normalize_html("<b>x</b>") != normalize_html("<i>x</i>")


# -------------------------------------------------------------- html_to_text


def test_recorded_markdown_html_reads_as_lines() -> None:
    html = event("html")["content"]["formatted_body"]
    assert html_to_text(html) == "Status: all good\none\ntwo & three"


def test_paragraphs_are_one_newline_apart() -> None:
    assert html_to_text("<p>a</p><p>b</p>") == "a\nb"


def test_br_is_a_newline() -> None:
    assert html_to_text("a<br>b<br/>c") == "a\nb\nc"


def test_two_br_make_a_blank_line() -> None:
    assert html_to_text("a<br><br>b") == "a\n\nb"


def test_list_items_are_lines() -> None:
    assert html_to_text("<ol><li>one</li><li>two</li></ol>") == "one\ntwo"


def test_headings_and_quotes_are_lines() -> None:
    assert html_to_text("<h1>Title</h1>text<blockquote>quoted</blockquote>") == (
        "Title\ntext\nquoted"
    )


def test_entities_are_decoded() -> None:
    assert html_to_text("a &amp; b &lt;c&gt; &#128075;") == "a & b <c> 👋"


def test_no_trailing_newline() -> None:
    assert html_to_text("<p>x</p>\n") == "x"


def test_inline_white_space_collapses() -> None:
    assert html_to_text("<p>a \n  <b>b</b>   c </p>") == "a b c"


def test_pre_keeps_its_white_space() -> None:
    assert html_to_text("<p>code:</p><pre><code>x = 1\n  y\n</code></pre>") == "code:\nx = 1\n  y"


def test_table_cells_of_a_row_are_one_space_apart() -> None:
    html = "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td> 2 </td></tr></table>"
    assert html_to_text(html) == "a b\n1 2"


def test_image_reads_as_its_alt_text() -> None:
    assert html_to_text('hi <img src="mxc://s/e" alt=":wave:">') == "hi :wave:"


def test_style_contents_are_not_read() -> None:
    assert html_to_text("<style>p { color: red }</style><p>x</p>") == "x"


def test_html_to_text_keeps_the_mx_reply_it_is_given() -> None:
    # readable_text strips the fallback first; html_to_text renders what it gets.
    assert html_to_text("<mx-reply><blockquote>q</blockquote></mx-reply>a") == "q\na"


# ---------------------------------------------------------------- html_mentions


def test_pill_is_a_mention() -> None:
    assert html_mentions(event("mentions")["content"]["formatted_body"]) == [ALICE]


def test_single_quoted_pill_is_a_mention() -> None:
    assert html_mentions(event("pill_only")["content"]["formatted_body"]) == [ALICE]


def test_percent_encoded_pill_with_via_is_a_mention() -> None:
    html = '<a href="https://matrix.to/#/%40bob%3Aexample.org?via=example.org">bob</a>'
    assert html_mentions(html) == ["@bob:example.org"]


def test_matrix_uri_is_a_mention() -> None:
    assert html_mentions('<a href="matrix:u/bob:example.org">bob</a>') == ["@bob:example.org"]


def test_link_to_a_room_or_event_is_not_a_mention() -> None:
    html = '<a href="https://matrix.to/#/!room:s/$event">here</a> <a href="https://x.org">x</a>'
    assert html_mentions(html) == []


def test_non_breaking_spaces_are_not_collapsed_in_html() -> None:
    assert normalize_html("<p>a&nbsp;&nbsp;b</p>") == "<p>a\xa0\xa0b</p>"


def test_non_breaking_space_reads_as_itself() -> None:
    assert html_to_text("a&nbsp; b") == "a\xa0 b"


def test_a_regex_that_backtracks_without_end_is_given_up_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python's re cannot be stopped, not even by a signal, once such a pattern runs:
    a bot's long answer would hang the run past every deadline."""
    monkeypatch.setattr(matching, "REGEX_BUDGET", 0.2)
    began = time.monotonic()
    verdict = text_matches(TextMatch(regex="(a|aa)+$"), "a" * 40 + "b")
    assert time.monotonic() - began < 5
    assert verdict.ok is False
    assert verdict.explanation.startswith("the regex /(a|aa)+$/ was given up on after 0.2 s")


def test_named_groups_come_back_from_the_timed_engine_as_from_re() -> None:
    verdict = text_matches(TextMatch(regex=r"(?P<n>\d+) items?"), "42 items")
    assert verdict.ok is True
    assert verdict.captures == {"n": "42"}
