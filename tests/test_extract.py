"""monitor.extract: the article's text, and nothing of the site around it, from any bytes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.exceptions import MonitorError
from monitor.extract import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_ELEMENTS,
    MAX_TEXT,
    PageError,
    PageText,
    decode,
    extract_page,
    flatten,
    nesting_depth,
)

REPO = Path(__file__).resolve().parents[1]
PAGES = REPO / "tests" / "data" / "pages"
URL = "https://news.example.org/2026/12/07/story.html"
# Characters no output may hold: controls other than \t \n, surrogates, non-characters.
JUNK = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_SPLIT = re.compile(r"(?<=[.!?؟»”])\s+(?=[«“A-ZА-ЯЁ\u0600-\u06ff])")


def sentences(text: str) -> list[str]:
    """The same split as bench/extract.py: lines, then sentence ends before a capital."""
    return [
        " ".join(s.split()) for line in text.splitlines() for s in _SPLIT.split(line) if s.strip()
    ]


def page(name: str) -> bytes:
    return (PAGES / f"{name}.html").read_bytes()


def expected(name: str) -> list[str]:
    lines = (PAGES / f"{name}.expected.txt").read_text(encoding="utf-8").splitlines()
    return [" ".join(s.split()) for s in lines if s.strip()]


# (page, names the article's body has, names only its furniture has, where the
#  furniture one is, floor for sentence precision, floor for recall)
PAGE_CASES = [
    ("en-energy-talks", ["Astana"], [], "", 1.0, 1.0),
    ("en-tram-line", ["Bishkek"], ["Astana"], "related link", 1.0, 1.0),
    ("en-wheat-harvest", [], ["Astana"], "comment", 1.0, 1.0),
    ("en-port-strike", [], ["Astana"], "footer, table layout", 1.0, 1.0),
    ("en-ferry-service", ["Almaty"], ["Astana"], "read-also box in the body", 1.0, 1.0),
    ("ru-gas-pipeline", ["Астане"], [], "", 1.0, 1.0),
    ("ru-metro-line", ["Бишкека"], ["Астан"], "related link", 1.0, 1.0),
    ("ru-harvest", [], ["Астан"], "comment", 1.0, 1.0),
    ("ru-port-strike", [], ["Астан"], "footer, table layout", 1.0, 1.0),
    ("ru-bridge-repair", ["Астане"], [], "", 1.0, 1.0),
    ("ar-water-talks", ["أستانا"], [], "", 1.0, 1.0),
    ("ar-tram-line", ["بيشكيك"], ["أستانا"], "related link", 1.0, 1.0),
    ("ar-wheat-harvest", [], ["أستانا"], "comment", 1.0, 1.0),
    ("ar-port-strike", [], ["أستانا"], "footer, table layout", 1.0, 1.0),
    ("ar-bread-prices", [], ["أستانا"], "comment without a class", 1.0, 1.0),
]


def test_every_page_is_in_the_table() -> None:
    assert {p.stem for p in PAGES.glob("*.html")} == {case[0] for case in PAGE_CASES}
    assert all((PAGES / f"{case[0]}.expected.txt").exists() for case in PAGE_CASES)


@pytest.mark.parametrize(
    ("name", "present", "absent", "where", "min_precision", "min_recall"),
    PAGE_CASES,
    ids=[c[0] for c in PAGE_CASES],
)
def test_article_text_without_the_site(
    name: str,
    present: list[str],
    absent: list[str],
    where: str,
    min_precision: float,
    min_recall: float,
) -> None:
    html = page(name)
    for word in absent:  # the page does carry it, in its furniture
        assert word in html.decode(), (name, where)
    result = extract_page(html, URL, "text/html; charset=utf-8")
    for word in present:
        assert word in result.text, name
    for word in absent:
        assert word not in result.text, f"{name}: {word} leaked from the {where}"
    got = sentences(result.text)
    truth = expected(name)
    precision = sum(s in truth for s in got) / len(got)
    recall = sum(s in got for s in truth) / len(truth)
    assert precision >= min_precision, [s for s in got if s not in truth]
    assert recall >= min_recall, [s for s in truth if s not in got]


@pytest.mark.parametrize(
    ("name", "word", "paragraph"),
    [
        ("en-energy-talks", "Astana", 6),
        ("ru-gas-pipeline", "Астане", 6),
        ("ar-water-talks", "أستانا", 6),
        ("ru-bridge-repair", "Астане", 6),
        ("en-tram-line", "Bishkek", 6),
        ("ar-tram-line", "بيشكيك", 5),
    ],
)
def test_a_mention_deep_in_the_body_is_found_in_its_paragraph(
    name: str, word: str, paragraph: int
) -> None:
    paragraphs = extract_page(page(name), URL, "text/html").text.split("\n\n")
    assert [i + 1 for i, p in enumerate(paragraphs) if word in p] == [paragraph]


def test_paragraphs_are_separated_by_blank_lines_and_the_headline_is_not_repeated() -> None:
    result = extract_page(page("en-wheat-harvest"), URL, "text/html")
    assert result.title == "Dry summer leaves wheat farmers counting their losses"
    paragraphs = result.text.split("\n\n")
    assert len(paragraphs) == 7
    assert paragraphs[0].startswith("Farmers across the northern plains")
    assert all(p == p.strip() and "\n" not in p for p in paragraphs)


@pytest.mark.parametrize("name", [c[0] for c in PAGE_CASES])
def test_title_image_and_language_of_each_page(name: str) -> None:
    result = extract_page(page(name), URL, "text/html")
    html = page(name).decode()
    og_title = re.search(r'<meta property="og:title" content="([^"]*)"', html)
    assert og_title is not None
    assert result.title == og_title.group(1).replace("&quot;", '"').replace("&#x27;", "'")
    assert result.image == f"https://news.example.org/media/2026/12/{name}.jpg"
    assert result.language == name[:2]


# --- not HTML, empty ------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body><p>text</p></body></html>", "application/pdf"),
        (b"<html><body><p>text</p></body></html>", "image/png"),
        (b'{"html": "<p>no</p>"}', "application/json; charset=utf-8"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", None),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "text/html"),  # a server that lies
        (PNG, None),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03<html>", None),
        (b"PK\x03\x04\x14\x00\x06\x00", "text/html"),
        (bytes(range(32)) * 40, None),
        (b"Just a plain sentence, with no markup at all, as a text file would be.", None),
    ],
    ids=[
        "pdf type",
        "png type",
        "json",
        "pdf bytes",
        "pdf as html",
        "png",
        "gzip",
        "zip",
        "controls",
        "plain text",
    ],
)
def test_not_html_is_refused(body: bytes, content_type: str | None) -> None:
    with pytest.raises(PageError) as info:
        extract_page(body, URL, content_type)
    assert info.value.reason == "not html"
    assert isinstance(info.value, MonitorError)


@pytest.mark.parametrize("body", [b"", b"   \n\t ", b"\r\n" * 100])
def test_an_empty_page_has_no_text(body: bytes) -> None:
    with pytest.raises(PageError) as info:
        extract_page(body, URL, "text/html")
    assert info.value.reason == "no text"


def test_leading_whitespace_is_not_an_empty_page() -> None:
    body = b" " * 10_000 + b"\n" * 5000 + page("en-energy-talks")
    assert "Astana" in extract_page(body, URL, None).text


def test_a_page_without_an_article_gives_empty_text_but_keeps_title_and_image() -> None:
    links = "".join(f'<li><a href="/s/{i}">Section {i}</a></li>' for i in range(40))
    html = (
        '<html lang="en"><head><title>Index | Site</title>'
        '<meta property="og:image" content="https://cdn.example.net/logo.png"></head>'
        f"<body><nav><ul>{links}</ul></nav><footer>© Site</footer></body></html>"
    )
    result = extract_page(html.encode(), URL, "text/html")
    assert result == PageText(
        text="", title="Index | Site", image="https://cdn.example.net/logo.png", language="en"
    )


def test_xhtml_with_an_xml_declaration() -> None:
    body = (
        '<?xml version="1.0" encoding="windows-1251"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="ru"><head><title>Т</title></head>'
        "<body><article>"
        + "".join(
            f"<p>Абзац номер {i}: переговоры в Астане продолжатся на следующей неделе.</p>"
            for i in range(6)
        )
        + "</article></body></html>"
    ).encode("cp1251")
    result = extract_page(body, URL, "application/xhtml+xml")
    assert "переговоры в Астане" in result.text
    assert result.language == "ru"


# --- charsets -------------------------------------------------------------------------


def _recode(name: str, charset: str, declare: str) -> tuple[bytes, str | None]:
    """A test page in another charset, declared in the header, a <meta> or nowhere."""
    html = page(name).decode()
    meta = {
        "meta": f'<meta charset="{charset}">',
        "http-equiv": f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">',
    }.get(declare, "")
    html = html.replace('<meta charset="utf-8">', meta)
    body = html.encode(charset, errors="xmlcharrefreplace")
    return body, (f"text/html; charset={charset}" if declare == "header" else "text/html")


@pytest.mark.parametrize("declare", ["header", "meta", "http-equiv"])
@pytest.mark.parametrize(
    ("name", "charset"),
    [
        ("ar-water-talks", "windows-1256"),
        ("ar-wheat-harvest", "cp1256"),
        ("ru-gas-pipeline", "koi8-r"),
        ("ru-harvest", "windows-1251"),
        ("ru-metro-line", "KOI8-R"),
    ],
)
def test_legacy_charsets_give_the_same_text(name: str, charset: str, declare: str) -> None:
    body, content_type = _recode(name, charset, declare)
    assert body != page(name)
    unicode_result = extract_page(page(name), URL, "text/html")
    result = extract_page(body, URL, content_type)
    assert result.text == unicode_result.text
    assert result.title == unicode_result.title
    assert "\ufffd" not in result.text


def test_the_header_charset_wins_over_the_page_and_unknown_labels_mean_utf8() -> None:
    body, _ = _recode("ru-harvest", "windows-1251", "meta")
    header_says = extract_page(
        body.replace(b"windows-1251", b"koi8-r"), URL, "text/html; charset=windows-1251"
    )
    assert "урожай пшеницы" in header_says.text
    utf8 = page("ru-harvest")
    for label in ("x-no-such-charset", "rot13", "base64", ""):
        result = extract_page(utf8, URL, f"text/html; charset={label}")
        assert "урожай пшеницы" in result.text, label


@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        (b"\xef\xbb\xbfhello \xd0\xbc\xd0\xb8\xd1\x80", "text/html; charset=koi8-r", "hello мир"),
        ("\ufeffhello мир".encode("utf-16-le"), None, "hello мир"),
        ("\ufeffhello мир".encode("utf-16-be"), "text/html", "hello мир"),
        (b"caf\xe9", "text/html; charset=iso-8859-1", "café"),
        (b"\x93quoted\x94", "text/html; charset=ISO-8859-1", "“quoted”"),  # windows-1252
        (
            b'<meta charset="utf-16"><p>\xd0\xbc\xd0\xb8\xd1\x80',
            None,
            '<meta charset="utf-16"><p>мир',
        ),
        (b"\xc3\x28 \xe0\x80 broken", None, "\ufffd( \ufffd\ufffd broken"),
        (
            b"<p>\xe1\xee\xeb\xfc\xf8\xee\xe9</p>",
            'text/html; charset="windows-1251"',
            "<p>большой</p>",
        ),
    ],
    ids=[
        "utf-8 bom beats header",
        "utf-16le bom",
        "utf-16be bom",
        "latin-1",
        "cp1252 quotes",
        "meta utf-16 means utf-8",
        "undeclared junk",
        "quoted label",
    ],
)
def test_decode(body: bytes, content_type: str | None, text: str) -> None:
    assert decode(body, content_type) == text


# --- images and language --------------------------------------------------------------


def _with_head(head: str, lang: str = "") -> bytes:
    body = "".join(
        f"<p>Paragraph {i} of a short story about the ferry crossing and its timetable.</p>"
        for i in range(5)
    )
    return f"<html{lang}><head>{head}</head><body><article>{body}</article></body></html>".encode()


@pytest.mark.parametrize(
    ("head", "url", "image"),
    [
        (
            '<meta property="og:image" content="/img/a.jpg">',
            URL,
            "https://news.example.org/img/a.jpg",
        ),
        (
            '<meta property="og:image" content="img/b.jpg">',
            URL,
            "https://news.example.org/2026/12/07/img/b.jpg",
        ),
        (
            '<meta property="og:image" content="//cdn.example.net/c.jpg">',
            URL,
            "https://cdn.example.net/c.jpg",
        ),
        (
            '<meta property="og:image" content="//cdn.example.net/c.jpg">',
            "http://plain.example/",
            "http://cdn.example.net/c.jpg",
        ),
        (
            '<meta property="og:image" content="  https://cdn.example.net/d.jpg  ">',
            URL,
            "https://cdn.example.net/d.jpg",
        ),
        ('<meta name="twitter:image" content="/t.png">', URL, "https://news.example.org/t.png"),
        (
            '<meta property="og:image" content=""><meta name="twitter:image" content="/t.png">',
            URL,
            "https://news.example.org/t.png",
        ),
        (
            '<meta property="og:image:secure_url" content="https://s.example/e.jpg">'
            '<meta property="og:image" content="http://s.example/e.jpg">',
            URL,
            "https://s.example/e.jpg",
        ),
        (
            '<meta property="OG:IMAGE" content="/upper.jpg">',
            URL,
            "https://news.example.org/upper.jpg",
        ),
        ('<meta property="og:image" content="javascript:alert(1)">', URL, None),
        ('<meta property="og:image" content="data:image/png;base64,iVBORw0KGgo=">', URL, None),
        ('<meta property="og:image" content="ftp://files.example/f.jpg">', URL, None),
        ('<meta property="og:image" content="http://[::1">', URL, None),
        ('<meta property="og:image" content="https://">', URL, None),
        ('<meta property="og:image" content="http:">', URL, None),
        (f'<meta property="og:image" content="/{"x" * 3000}.jpg">', URL, None),
        ("", URL, None),
    ],
    ids=[
        "absolute path",
        "relative",
        "scheme-relative",
        "scheme-relative http",
        "spaces",
        "twitter",
        "empty og falls back",
        "secure_url first",
        "upper-case key",
        "javascript",
        "data",
        "ftp",
        "bad ipv6",
        "the page itself",
        "no host",
        "too long",
        "none",
    ],
)
def test_image_is_an_absolute_http_url(head: str, url: str, image: str | None) -> None:
    assert extract_page(_with_head(head), url, "text/html").image == image


@pytest.mark.parametrize(
    ("lang", "language"),
    [
        (' lang="ar-SY"', "ar"),
        (' lang="RU"', "ru"),
        (' lang="en_GB"', "en"),
        (' lang="fil"', "fil"),
        (' lang=""', None),
        (' lang="x-klingon"', None),
        (' lang="12"', None),
        ("", None),
        (' xml:lang="ar"', "ar"),
    ],
)
def test_language_from_the_html_element(lang: str, language: str | None) -> None:
    assert extract_page(_with_head("", lang), URL, "text/html").language == language


# --- nesting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "depth"),
    [
        ("<html><body><div><p>x</p></div></body></html>", 4),
        ("<p>a<p>b<p>c<p>d", 1),  # a <p> ends the open one
        ("<ul><li>a<li>b<li>c</ul>", 2),
        ("<table><tr><td>a<td>b<tr><td>c</table>", 3),
        ("<div><img src=x><br><hr/><input></div>", 1),
        ("<div/><div/><div/>", 0),
        ("<script>" + "<div>" * 500 + "</script><div></div>", 1),
        ("<!--" + "<div>" * 500 + "--><div></div>", 1),
        ("<style>" + "<div>" * 500, 0),  # never closed: the rest is style text
        ("<div>" * 300 + "</div>" * 300, 300),
        ("<DIV><Span>x</SPAN></div>", 2),
        ("</div></div><div>", 1),
    ],
)
def test_nesting_depth(html: str, depth: int) -> None:
    assert nesting_depth(html) == depth


def test_flatten_keeps_the_text_and_the_shallow_structure() -> None:
    html = (
        "<html><body>" + "<div>" * 500 + "<p>deep <b>text</b></p>" + "</div>" * 500 + "<p>after</p>"
    )
    flat = flatten(html, 10)
    assert nesting_depth(flat) <= 10
    assert flat.startswith("<html><body>" + "<div>" * 8)
    assert "deep text" in flat
    assert flat.endswith("<p>after</p>")
    assert flatten("<div><p>x</p></div>", 10) == "<div><p>x</p></div>"


@pytest.mark.parametrize("n", [MAX_DEPTH + 1, 300, 50_000])
def test_deeply_nested_article_is_still_found(n: int) -> None:
    paragraph = (
        "<p>The next round of talks will take place in Astana in February, the ministry said.</p>"
    )
    html = "<html><body>" + "<div>" * n + paragraph * 5 + "</div>" * n + "<p>tail</p></body></html>"
    result = extract_page(html.encode(), URL, "text/html")
    assert "take place in Astana" in result.text


# --- hostile input, each in a subprocess that a timeout ends --------------------------

HOSTILE = {
    "nested divs 100k": "('<html><body>' + '<div>' * 100_000 + P * 5 + '</div>' * 10**5).encode()",
    "unclosed divs 50k": "('<html><body>' + '<div>' * 50_000 + P * 5).encode()",
    "nested tables 20k": "('<html><body>' + '<table><tr><td>' * 20_000 + P * 5).encode()",
    "nested inline 100k": "('<html><body><p>' + '<b><i><span>' * 33_000 + P * 5).encode()",
    "3 MB of junk": "bytes(random.Random(1).choices(b'ab <>/=\"\\' \\n&#;x1', k=3_000_000))",
    "3 MB of links": "('<html><body>' + P * 5 + '<a href=\"/x\">link</a> ' * 150_000).encode()",
    "3 MB of one word": "('<html><body><p>' + 'Astana ' * 450_000 + '</p>').encode()",
    "unclosed scripts": "('<html><body>' + P * 5 + '<script>x' * 300_000).encode()",
    "unclosed comments": "('<html><body>' + P * 5 + '<!-- x' * 500_000).encode()",
    "unclosed attributes": "('<html><body>' + P * 5 + '<div class=\"' * 300_000).encode()",
    "surrogates and NUL": (
        "('<html><body>' + P.replace('talks', 'talks \\ud800\\udfff \\x00 \\ufffe "
        "\\U0010ffff &#xD800; &#0; &#x1;') * 5).encode('utf-8', 'surrogatepass')"
    ),
}
_RUNNER = textwrap.dedent(
    """
    import json, random, sys
    from monitor.extract import extract_page, PageError
    P = "<p>The next round of talks will take place in Astana in February, the ministry said.</p>"
    body = {expr}
    try:
        r = extract_page(body, "https://news.example.org/a", "text/html")
        out = {{"text": r.text, "title": r.title, "image": r.image}}
    except PageError as e:
        out = {{"error": e.reason}}
    sys.stdout.write(json.dumps(out))
    """
)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_pages_end_without_a_traceback(case: str) -> None:
    # A hang guard, not a speed limit: the bound is MAX_BYTES, MAX_DEPTH and MAX_ELEMENTS.
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER.format(expr=HOSTILE[case])],
        capture_output=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    out = json.loads(done.stdout)  # ensure_ascii: lone surrogates would show as \\ud800
    if "error" in out:
        assert out["error"] in ("not html", "no text")
        return
    assert len(out["text"]) <= MAX_TEXT
    assert not JUNK.search(out["text"] + out["title"])
    if case in ("nested divs 100k", "unclosed divs 50k", "surrogates and NUL", "3 MB of links"):
        assert "take place in Astana" in out["text"]


def test_a_page_made_big_by_its_comments_keeps_its_article_and_not_the_comments() -> None:
    comment = (
        '<li class="comment"><div class="comment-meta"><span class="author">reader</span>'
        '<time>08:00</time></div><div class="comment-body"><p>Flights to Astana are cheaper '
        'now.</p></div><a class="reply" href="#">Reply</a></li>'
    )
    html = (
        page("en-tram-line")
        .decode()
        .replace('<ol class="comment-list">', '<ol class="comment-list">' + comment * 5000)
    )
    assert html.count("<") > MAX_ELEMENTS
    result = extract_page(html.encode(), URL, "text/html")
    assert "Bishkek" in result.text
    assert "Astana" not in result.text
    assert sentences(result.text) == expected("en-tram-line")


def test_input_beyond_the_cap_is_not_read() -> None:
    filler = "<p>" + "word " * 2000 + "</p>"
    html = (
        "<html><body>" + filler * (MAX_BYTES // len(filler) + 1) + "<p>Astana is past the cap.</p>"
    )
    assert len(html) > MAX_BYTES
    assert "Astana" not in extract_page(html.encode(), URL, "text/html").text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=500).map(lambda s: f"<html><body><p>{s}</p></body></html>"),
        st.lists(
            st.sampled_from(
                [
                    "<div>",
                    "</div>",
                    "<p>",
                    "<b>",
                    "</p>",
                    "<!--",
                    "-->",
                    "<script>",
                    "</script>",
                    "Astana ",
                    "&#xD800;",
                    "&#0;",
                    "\x00",
                    "\ud800",
                    "<br>",
                    "<table>",
                    "<td>",
                    "<meta charset=koi8-r>",
                    "<html lang=ar>",
                ]
            ),
            max_size=300,
        ).map("".join),
    ),
    st.sampled_from([None, "text/html", "text/html; charset=windows-1256", "application/pdf"]),
)
def test_any_input_gives_clean_text_or_a_page_error(
    body: bytes | str, content_type: str | None
) -> None:
    data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    try:
        result = extract_page(data, URL, content_type)
    except PageError as e:
        assert e.reason in ("not html", "no text")
        return
    assert not JUNK.search(result.text + result.title)
    assert result.image is None or result.image.startswith(("http://", "https://"))
    assert result.language is None or result.language.isalpha()
