"""One hostile feed or one typo must never silence the worker.

Hostile characters (surrogates, NUL, non-characters) in every field, hostile sizes
(runs of dots, a megabyte tail without line breaks, 100,000 nested <div>s), a
catastrophic regular expression in a rule, redirects into the private network and
hostile `monitor match --jsonl` input. Fetching goes through the real test feed
server on 127.0.0.1; the CPU-heavy cases run in a subprocess with a generous
timeout, so a regression fails the test instead of freezing the suite (no test
asserts on durations).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import match as match_module
from monitor.articles import _flat_text, html_to_text, to_articles
from monitor.exceptions import FetchError, ParseError
from monitor.fetch import Fetcher, FetchSettings, is_public_address
from monitor.match import check_rule, compile_rules, regex_warnings, rule_warnings
from monitor.models import Article, FeedSource, ParsedFeed, Rule
from monitor.parse import parse_bytes, parse_feed
from monitor.sanitize import BAD_CHARS, clean, scrub_char_refs
from tests.fakes.feedserver import FeedServer

from .conftest import REPO
from .conftest import run_monitor as monitor

NOW = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
GUARD = 60  # seconds: a quadratic regression fails here instead of hanging the suite
FAST = FetchSettings(timeout=5.0, connect_timeout=5.0, max_bytes=1024 * 1024)

# ------------------------------------------------------------ 1. characters at the edge

BAD_REFS = "&#xD800;&#xdfff;&#0;&#x1;&#x0B;&#xFFFE;&#xFFFF;&#x1FFFF;&#xFDD0;&#55296;&#x0000D800;"


def rss(first_item: dict[str, str]) -> bytes:
    """An RSS 2.0 feed: a first item built from ``first_item``, then a plain good item."""
    fields = {
        "title": "Talks resume in Astana",
        "description": "&lt;p&gt;Delegations met on Tuesday.&lt;/p&gt;",
        "guid": "wire-1",
        "link": "https://news.example/1",
        "author": "desk@news.example (Wire desk)",
        "pubDate": "Tue, 10 Feb 2026 09:30:00 GMT",
        **first_item,
    }
    first = "".join(f"<{k}>{v}</{k.split()[0]}>" for k, v in fields.items())
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        "<channel><title>Hostile wire</title><link>https://news.example/</link>"
        f"<item>{first}</item>"
        "<item><title>Aid convoy reaches the border</title><guid>wire-2</guid>"
        "<link>https://news.example/2</link><description>The convoy crossed at dawn."
        "</description></item></channel></rss>"
    ).encode()


def atom(entry_field: str, value: str) -> bytes:
    fields = {
        "title": "Talks resume in Astana",
        "id": "tag:news.example,2026:1",
        "summary": "Delegations met.",
        "updated": "2026-02-10T09:30:00Z",
        "author": "<name>Wire desk</name>",
        entry_field: value,
    }
    body = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Hostile atom</title><id>tag:news.example,2026:feed</id>"
        '<updated>2026-02-10T09:30:00Z</updated><link href="https://news.example/"/>'
        f'<entry>{body}<link href="https://news.example/a{BAD_REFS}"/></entry>'
        "<entry><title>Second</title><id>tag:news.example,2026:2</id>"
        "<updated>2026-02-10T09:30:00Z</updated></entry></feed>"
    ).encode()


def assert_clean(parsed: ParsedFeed) -> None:
    for entry in parsed.entries:
        for f in dataclasses.fields(entry):
            value = getattr(entry, f.name)
            if isinstance(value, str):
                assert BAD_CHARS.search(value) is None, (f.name, value)
                value.encode("utf-8")  # storable anywhere
    for value in (parsed.title, parsed.link, parsed.warning):
        assert value is None or BAD_CHARS.search(value) is None


RSS_CASES = [
    ("title", {"title": f"Talks{BAD_REFS} resume"}),
    ("summary", {"description": f"Delegations{BAD_REFS} met."}),
    ("content", {"content:encoded": f"&lt;p&gt;Full{BAD_REFS} text&lt;/p&gt;"}),
    ("guid", {"guid": f"wire{BAD_REFS}-1"}),
    ("link", {"link": f"https://news.example/1{BAD_REFS}"}),
    ("author", {"author": f"desk@news.example (Wire{BAD_REFS} desk)"}),
    ("date", {"pubDate": f"Tue, 10 Feb 2026{BAD_REFS} 09:30:00 GMT"}),
    ("cdata", {"description": f"<![CDATA[<p>Delegations{BAD_REFS} met.</p>]]>"}),
]


@pytest.mark.parametrize("fast", [True, False], ids=["lxml", "feedparser"])
@pytest.mark.parametrize(("name", "fields"), RSS_CASES, ids=[c[0] for c in RSS_CASES])
def test_bad_character_references_are_dropped_in_every_rss_field(
    name: str, fields: dict[str, str], fast: bool
) -> None:
    parsed = parse_bytes(rss(fields), fast=fast)
    assert [e.guid for e in parsed.entries][1] == "wire-2"  # the good entry is untouched
    assert len(parsed.entries) == 2
    assert_clean(parsed)
    first = parsed.entries[0]
    if name == "guid":
        assert first.guid == "wire-1"
    if name == "link":
        assert first.link == "https://news.example/1"
    if name == "title":
        assert first.title == "Talks resume"
    articles = to_articles(FeedSource(id="w", url="https://news.example/feed"), parsed, NOW)
    assert [a.key for a in articles][1] == "wire-2"
    for article in articles:
        assert BAD_CHARS.search(article.key) is None
        assert BAD_CHARS.search(article.title + article.summary + article.content) is None


@pytest.mark.parametrize("field", ["title", "id", "summary", "updated", "author"])
def test_bad_character_references_are_dropped_in_every_atom_field(field: str) -> None:
    value = {"author": f"<name>Wire{BAD_REFS}</name>"}.get(field, f"x{BAD_REFS}y")
    parsed = parse_bytes(atom(field, value))
    assert len(parsed.entries) == 2
    assert_clean(parsed)
    assert parsed.entries[0].link == "https://news.example/a"


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"guid": "wire&#0;-1"}, "wire-1"),
        ({"guid": "wire&#x00;-1&#x7;"}, "wire-1"),
        ({"guid": "", "link": "https://news.example/a&#0;b"}, "https://news.example/ab"),
    ],
)
def test_nul_never_reaches_the_entry_key(fields: dict[str, str], key: str) -> None:
    doc = rss(fields).replace(b"<guid></guid>", b"")
    for fast in (True, False):
        articles = to_articles(FeedSource(id="w", url=""), parse_bytes(doc, fast=fast), NOW)
        assert articles[0].key == key
        assert "\x00" not in articles[0].key


def test_literal_control_characters_in_a_feed_are_cleaned() -> None:
    # raw bytes, not references: broken XML, recovered by feedparser, cleaned at the edge
    doc = rss({"title": "Talks\x01 resume\x1f", "guid": "wire\x00-1"})
    parsed = parse_bytes(doc)
    assert_clean(parsed)
    assert parsed.entries[0].title == "Talks resume"


@pytest.mark.parametrize(
    "doc",
    [
        # references the byte scrubber cannot see (UTF-16), and other oddities
        rss({"title": "Talks&#xD800; resume"}).decode().encode("utf-16"),
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        b"<item><title>&#x110000;</title></item></channel></rss>",
        b"<rss>" + b"<item>" * 5000,
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title type="xhtml">'
        + b"<div>" * 3000
        + b"</title></entry></feed>",
    ],
    ids=["utf16-surrogate", "beyond-unicode", "unclosed-items", "deep-xhtml"],
)
def test_any_parser_failure_is_a_parse_error_or_a_clean_feed(doc: bytes) -> None:
    for fast in (True, False):
        try:
            parsed = parse_bytes(doc, fast=fast)
        except ParseError:
            continue
        assert_clean(parsed)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_clean_removes_exactly_the_unstorable(text: str) -> None:
    out = clean(text)
    assert BAD_CHARS.search(out) is None
    out.encode("utf-8")
    assert clean(out) == out
    assert out == "".join(ch for ch in text if not BAD_CHARS.match(ch))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("خبر \U0001f4f0 عاجل", "خبر \U0001f4f0 عاجل"),  # an emoji (astral, allowed) stays
        ("a\U0001fffeb\U0010ffffc", "abc"),  # astral non-characters go
        ("\U0001f600\ufffe\U0002fffe", "\U0001f600"),
        ("Астана\x00\ud83d", "Астана"),  # NUL and a lone surrogate, no astral character
        ("\ufdd0\ufdef\ufdf0", "\ufdf0"),
    ],
)
def test_clean_fast_path_agrees_at_the_edges(text: str, expected: str) -> None:
    """``clean`` tests BMP and astral characters separately; both halves must hold."""
    assert clean(text) == expected
    assert clean(expected) is expected  # nothing to remove: no copy


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a&#xD800;b", b"ab"),
        (b"a&#0;b&#00000;", b"ab"),
        (b"&#x41;&#65;&#x9;&#10;", b"&#x41;&#65;&#x9;&#10;"),  # allowed ones stay
        (b"&#x110000;&#99999999999;", b"&#99999999999;"),  # too many digits: left to the parser
        (b"&amp;#xD800;", b"&amp;#xD800;"),  # text, not a reference: the HTML step handles it
    ],
)
def test_scrub_char_refs(raw: bytes, expected: bytes) -> None:
    assert scrub_char_refs(raw) == expected


async def test_a_hostile_feed_over_http_parses_to_clean_entries(feed_server: FeedServer) -> None:
    url = feed_server.add("/hostile/chars.xml", rss({"title": f"A{BAD_REFS}", "guid": "g&#0;1"}))
    async with Fetcher(FAST) as fetcher:
        result = await asyncio.wait_for(fetcher.fetch(FeedSource(id="h", url=url)), GUARD)
    parsed = parse_feed(result)
    assert_clean(parsed)
    # a guid without isPermaLink="false" is a link, resolved against the feed's URL
    assert [(e.guid or "").rsplit("/", 1)[-1] for e in parsed.entries] == ["g1", "wire-2"]


# ------------------------------------------------------------------ 2. linear text


def run_bounded(code: str, data: str = "") -> str:
    """Run ``code`` in a fresh interpreter from the repository root with ``data`` as
    ``DATA`` (sent on stdin); its stdout. The timeout turns a hang into a failure."""
    prelude = "import sys; DATA = sys.stdin.buffer.read().decode('utf-8')\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        input=data.encode("utf-8"),
        capture_output=True,
        cwd=REPO,
        timeout=GUARD,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


@pytest.mark.parametrize("mark", [".", "؟", "!", "…"])
def test_a_long_run_of_sentence_marks_is_split_quickly(mark: str) -> None:
    out = run_bounded(
        f"""
        from monitor.sentences import split_sentences
        text = "Talks" + {mark!r} * 200_000 + " Next one. " + {mark!r} * 200_000
        spans = split_sentences(text)
        print(len(spans), spans[0][0], spans[-1][1] == len(text))
        """
    )
    count, start, reaches_end = out.split()
    assert int(count) >= 2 and start == "0" and reaches_end == "True"


@pytest.mark.parametrize(
    "text",
    [
        "The post appeared first on " * 40_000,
        "The post x. " * 90_000 + "appeared first on Wire.",
        "The post " + "word " * 200_000 + "appeared first on Wire.",
        "Body. " * 100_000 + "The post Talks appeared first on Wire.",
    ],
    ids=["repeated", "posts", "one-long", "real-tail"],
)
def test_the_boilerplate_cleanup_is_bounded_on_text_without_line_breaks(text: str) -> None:
    out = run_bounded(
        """
        import json
        from monitor.articles import strip_boilerplate
        print(json.dumps(strip_boilerplate(DATA)[-40:]))
        """,
        text,
    )
    tail = json.loads(out)
    if text.endswith("Talks appeared first on Wire."):
        assert tail.endswith("Body.")  # the real WordPress tail is still cut
    assert "\n" not in tail


@pytest.mark.parametrize(
    ("html", "expected_start"),
    [
        ("<div>" * 100_000 + "Deep text" + "</div>" * 100_000, "Deep text"),
        ("<div>" * 100_000 + "<p>One</p><script>x()</script><p>Two &amp; three</p>", "One"),
        ("<b>" * 100_000 + "Bold", "Bold"),
        ("<p>" + "<" * 500_000 + "x", "<"),
        ("<a href='x'>" * 50_000 + "Link", "Link"),
    ],
    ids=["divs", "divs-unclosed", "formatting", "lone-brackets", "anchors"],
)
def test_deep_markup_is_read_in_linear_time(html: str, expected_start: str) -> None:
    out = run_bounded(
        """
        import json
        from monitor.articles import html_to_text
        print(json.dumps(html_to_text(DATA)[:60]))
        """,
        html,
    )
    text = json.loads(out)
    assert text.startswith(expected_start)
    assert "x()" not in text


@pytest.mark.parametrize(
    "html",
    [
        "<p>Talks resumed.</p><p>Delegations met &amp; agreed.</p>",
        "<div><h2>Title</h2><ul><li>One</li><li>Two</li></ul></div>tail",
        "Before<script>var a = '<p>';</script>after<br>next line",
        "<style>p { color: red }</style><p>Styled</p>",
        "Plain &lt;tag&gt; text &#x41;",
    ],
)
def test_the_flat_fallback_reads_markup_like_the_parser(html: str) -> None:
    assert _flat_text(html) == html_to_text(html)


def test_entry_html_is_capped() -> None:
    from monitor.articles import MAX_HTML_CHARS

    text = html_to_text("<p>" + "word " * (MAX_HTML_CHARS // 4) + "</p><p>LAST</p>")
    assert "LAST" not in text and len(text) <= MAX_HTML_CHARS


# ------------------------------------------------------------------- 3. rule regexes

#: (term, must time out): the regex module defuses some patterns by itself
CATASTROPHIC = [("re:(a|aa)+c", True), (r"re:(\w+\s?)+:", False), ("re:(x+x+)+y", False)]


@pytest.mark.parametrize(("term", "times_out"), CATASTROPHIC)
async def test_a_catastrophic_regex_is_cut_and_reported_once(
    term: str, times_out: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(match_module, "REGEX_TIMEOUT", 0.05)
    matcher = compile_rules([Rule(name="slow", any=(term,)), Rule(name="astana", any=("Astana",))])
    reported: list[str] = []
    matcher.on_regex_timeout = reported.append
    hostile = "a" * 5000 + " " + "word " * 3000 + "x" * 3000 + " Astana"
    articles = [Article(key=str(i), feed_id="f", title="Astana", content=hostile) for i in range(3)]

    def run() -> list[list[str]]:
        return [[m.rule for m in matcher.match(a)] for a in articles]

    results = await asyncio.wait_for(asyncio.to_thread(run), GUARD)
    assert all("astana" in names for names in results)  # the other rule still works
    assert bool(matcher.regex_timeouts) or not times_out
    if matcher.regex_timeouts:
        assert all("slow" not in names for names in results)
        assert reported == [term] and matcher.regex_timeouts == {term: 3}
        warnings = [r for r in caplog.records if "took longer than" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelname == "WARNING"


def test_a_timed_out_regex_does_not_hide_its_normal_hits() -> None:
    matcher = compile_rules([Rule(name="ceasefire", any=("re:cease-?fire",))])
    article = Article(key="1", feed_id="f", title="Ceasefire agreed", content="A cease-fire.")
    assert [m.rule for m in matcher.match(article)] == ["ceasefire"]
    assert matcher.regex_timeouts == {}


@pytest.mark.parametrize(
    ("pattern", "warns"),
    [
        ("(a+)+", True),
        (r"(\w+\s?)+:", True),
        ("(a|a)*", True),
        ("(a|aa)+c", True),
        ("(?:x+)*y", True),
        ("(?=(a+)+)", True),
        ("cease-?fire", False),
        (r"\d{2,}-\w+", False),
        ("(foo|bar)+", False),
        ("(?:ab|ac)*", False),
        ("a{2,5}(b|c)", False),
        ("(", False),  # invalid: check_rule reports it, not this
    ],
)
def test_regex_warnings_flag_nested_quantifiers(pattern: str, warns: bool) -> None:
    assert bool(regex_warnings(pattern)) is warns


def test_rule_warnings_are_located() -> None:
    rule = Rule(name="r", any=("Astana", "re:(a+)+"), none=("re:(x|x)*",), query="/(b+)+/ AND c")
    found = rule_warnings(rule)
    assert [(p.key, p.index) for p in found] == [("any", 1), ("none", 0), ("query", None)]
    assert check_rule(rule) == []  # a warning, not an error: the rule still loads


def test_monitor_match_survives_a_catastrophic_rule(write_config) -> None:
    path = write_config(
        """
        feeds: []
        rules:
          - name: slow
            any: ["re:(a|aa)+c"]
          - name: astana
            any: [Astana]
        """
    )
    lines = [{"id": i, "title": "Astana", "text": "a" * 20_000} for i in range(3)]
    stdin = "\n".join(json.dumps(x) for x in lines) + "\n"
    result = monitor("match", "--config", str(path), "--jsonl", stdin=stdin, timeout=GUARD)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [[m["rule"] for m in o["matches"]] for o in out] == [["astana"]] * 3
    assert result.stderr.count("took longer than") <= 1


# ------------------------------------------------------------------ 4. redirect guard

#: Tests can only use 127.0.0.0/8, so 127.0.0.1 plays a public address here.
LOOPBACK_IS_PUBLIC = FetchSettings(
    timeout=5.0,
    connect_timeout=5.0,
    is_public=lambda ip: ip == IPv4Address("127.0.0.1") or is_public_address(ip),
)


def redirect(server: FeedServer, path: str, location: str, status: int = 302) -> str:
    return server.add(path, b"", status=status, headers={"Location": location})


async def fetch_url(url: str, settings: FetchSettings, **kw: object):
    async with Fetcher(settings) as fetcher:
        return await asyncio.wait_for(fetcher.fetch(FeedSource(id="r", url=url, **kw)), GUARD)


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/good.xml",
        "http://10.0.0.1/feed",
        "http://192.168.1.1/feed",
        "http://172.16.0.1/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:{port}/good.xml",
        "http://224.0.0.1/feed",
        "http://240.0.0.1/feed",
        "http://100.64.0.1/feed",
        "http://[::1]:{port}/good.xml",
        "http://[::]/feed",
        "http://[fe80::1]/feed",
        "http://[fc00::1]/feed",
        "http://[ff02::1]/feed",
        "http://[::ffff:10.0.0.1]/feed",
        "http://[::ffff:127.0.0.2]:{port}/good.xml",
        "http://[2002:a00:1::]/feed",
        "http://no-such-host.invalid/feed",
    ],
)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_from_public_to_private_is_refused(
    feed_server: FeedServer, target: str, status: int
) -> None:
    path = f"/guard/{status}/{abs(hash(target))}"
    url = redirect(feed_server, path, target.format(port=feed_server.port), status)
    with pytest.raises(FetchError) as info:
        await fetch_url(url, LOOPBACK_IS_PUBLIC)
    assert "refused a redirect from a public address to a private one" in str(info.value)


async def test_a_later_hop_into_the_private_network_is_refused(feed_server: FeedServer) -> None:
    redirect(feed_server, "/guard/hop2", "http://10.0.0.1/feed")
    url = redirect(feed_server, "/guard/hop1", "/guard/hop2")
    with pytest.raises(FetchError, match="refused a redirect"):
        await fetch_url(url, LOOPBACK_IS_PUBLIC)


async def test_the_connected_address_is_checked_too(feed_server: FeedServer) -> None:
    """DNS rebinding: the name looked public when checked, the connection went private.

    Simulated with a classifier whose answers are scripted in call order: the redirect
    target's check (public), the connected peer (private), the first hop (public)."""
    answers = iter([True, False, True])
    rebinding = dataclasses.replace(LOOPBACK_IS_PUBLIC, is_public=lambda ip: next(answers))
    url = redirect(feed_server, "/guard/rebind", feed_server.url("/good.xml"))
    with pytest.raises(FetchError, match=r"refused a redirect .*\(127\.0\.0\.1\)"):
        await fetch_url(url, rebinding)
    assert next(answers, None) is None  # exactly the three scripted checks were made


async def test_public_to_public_and_private_to_private_redirects_are_followed(
    feed_server: FeedServer,
) -> None:
    url = redirect(feed_server, "/guard/same", "/good.xml")
    assert (await fetch_url(url, LOOPBACK_IS_PUBLIC)).status == 200
    # a configured local feed is the operator's choice, and so are its local redirects
    local = redirect(feed_server, "/guard/local", f"http://localhost:{feed_server.port}/good.xml")
    assert (await fetch_url(local, FAST)).status == 200


async def test_the_setting_allows_private_redirects(feed_server: FeedServer) -> None:
    url = redirect(feed_server, "/guard/allowed", f"http://localhost:{feed_server.port}/good.xml")
    relaxed = dataclasses.replace(
        LOOPBACK_IS_PUBLIC, allow_private_redirects=True, is_public=lambda ip: ip.version == 4
    )
    assert (await fetch_url(url, relaxed)).status == 200
    strict = dataclasses.replace(relaxed, allow_private_redirects=False)
    with pytest.raises(FetchError, match="refused a redirect"):  # localhost has no public side
        await fetch_url(
            redirect(feed_server, "/guard/strict", "http://[::1]/feed"),
            strict,
        )


async def test_custom_headers_stay_with_their_host(feed_server: FeedServer) -> None:
    other = f"http://localhost:{feed_server.port}/good.xml"
    url = redirect(feed_server, "/guard/cookie", other)
    redirect(feed_server, "/guard/cookie-same", "/etag.xml")
    headers = {"Cookie": "session=secret", "X-Api-Key": "k"}
    await fetch_url(url, FAST, headers=headers)
    assert feed_server.requests_to("/guard/cookie")[-1].headers.get("Cookie") == "session=secret"
    moved = feed_server.requests_to("/good.xml")[-1].headers
    assert "Cookie" not in moved and "X-Api-Key" not in moved
    assert moved["User-Agent"].startswith("monitor/")  # the ordinary headers still go
    await fetch_url(feed_server.url("/guard/cookie-same"), FAST, headers=headers)
    assert feed_server.requests_to("/etag.xml")[-1].headers.get("Cookie") == "session=secret"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2a00:1450:4001:80b::200e", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("169.254.0.1", False),
        ("100.64.0.1", False),
        ("224.0.0.251", False),
        ("239.255.255.250", False),
        ("255.255.255.255", False),
        ("0.0.0.0", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd12:3456::1", False),
        ("ff05::2", False),
        ("::ffff:192.168.0.1", False),
        ("2002:c0a8:1::", False),  # 6to4 of 192.168.0.1
        ("2001:db8::1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    ip = ip_address(address)
    assert isinstance(ip, IPv4Address | IPv6Address)
    assert is_public_address(ip) is public


async def test_hostnames_are_judged_by_every_address_they_resolve_to() -> None:
    fetcher = Fetcher(FAST)
    assert await fetcher._all_public("localhost", None) is False
    assert await fetcher._all_public("no-such-host.invalid", None) is False
    trusting = Fetcher(dataclasses.replace(FAST, is_public=lambda ip: True))
    assert await trusting._all_public("localhost", None) is True


# ------------------------------------------------------------------------- 5. HTTP 410


@pytest.mark.parametrize(("path", "gone"), [("/status/410", True), ("/status/404", False)])
async def test_410_is_reported_as_gone(feed_server: FeedServer, path: str, gone: bool) -> None:
    with pytest.raises(FetchError) as info:
        await fetch_url(feed_server.url(path), FAST)
    assert info.value.gone is gone
    assert info.value.status == int(path.rsplit("/", 1)[1])


async def test_410_after_a_redirect_is_gone(feed_server: FeedServer) -> None:
    url = redirect(feed_server, "/guard/to-gone", "/status/410", 301)
    with pytest.raises(FetchError) as info:
        await fetch_url(url, FAST)
    assert info.value.gone and "gone" in str(info.value)


# ------------------------------------------------------------------ 6. match --jsonl

JSONL_CASES = [
    ("[" * 100_000 + "\n", "nested too deeply"),
    ('{"id": 1e999, "text": "x"}\n', "out of range"),
    ('{"id": "a", "score": -1e400}\n', "out of range"),
    ('{"id": NaN}\n', "NaN is not a JSON number"),
    ('{"id": -Infinity}\n', "-Infinity is not a JSON number"),
    ('{"id": {"nested": 1}}\n', "'id' must be a string or a number"),
    ('{"id": 1, "text": 5}\n', "'text' must be a string"),
    ("[1, 2]\n", "expected a JSON object"),
    ('{"id": 1,\n', "Expecting"),
    ('{"id": ' + "9" * 5000 + "}\n", "integer"),
]


@pytest.mark.parametrize(("line", "message"), JSONL_CASES)
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_match_jsonl_reports_bad_lines_located(
    tmp_path, line: str, message: str, source: str
) -> None:
    good = json.dumps({"id": "ok", "title": "Talks in Astana"}) + "\n"
    data = good + line + good
    if source == "file":
        file = tmp_path / "articles.jsonl"
        file.write_text(data, encoding="utf-8")
        result = monitor("match", "--jsonl", str(file), timeout=GUARD)
        name = str(file)
    else:
        result = monitor("match", "--jsonl", stdin=data, timeout=GUARD)
        name = "<stdin>"
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"{name}:2: ")
    assert message in errors[0]
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert [o["id"] for o in out] == ["ok", None, "ok"]
    assert out[1]["line"] == 2 and message in out[1]["error"]
    assert [m["rule"] for m in out[2]["matches"]] == ["astana"]


def test_match_jsonl_escapes_lone_surrogates_in_output() -> None:
    lines = [
        r'{"id": "a\ud800b", "title": "Astana \udfff talks"}',
        r'{"id": "plain", "title": "Astana"}',
    ]
    result = monitor("match", "--jsonl", stdin="\n".join(lines) + "\n", timeout=GUARD)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert [o["id"] for o in out] == ["a\ud800b", "plain"]  # escaped, so it round-trips
    assert [m["rule"] for m in out[0]["matches"]] == ["astana"]
    assert result.stdout.encode("utf-8")


def test_match_reads_invalid_utf8_without_a_traceback(tmp_path) -> None:
    file = tmp_path / "bytes.jsonl"
    file.write_bytes(b'{"id": "x", "title": "Astana \xff\xfe"}\n')
    for args, kw in ((["--jsonl", str(file)], {}), (["--jsonl"], {"stdin": None})):
        if "stdin" in kw:
            done = subprocess.run(
                [sys.executable, "-m", "monitor", "match", *args],
                input=file.read_bytes(),
                capture_output=True,
                cwd=REPO,
                timeout=GUARD,
            )
            stdout, stderr = done.stdout.decode(), done.stderr.decode()
        else:
            done = monitor("match", *args, timeout=GUARD)
            stdout, stderr = done.stdout, done.stderr
        assert done.returncode == 0 and "Traceback" not in stderr
        assert json.loads(stdout)["matches"][0]["rule"] == "astana"
