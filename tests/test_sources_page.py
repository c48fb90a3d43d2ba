"""Article links on a page without a feed: discovery, selectors, rotation, hostile pages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.articles import canonical_url, to_articles
from monitor.models import FeedSource
from monitor.sources.page import (
    MAX_LINKS_PER_PAGE,
    Link,
    check_selector,
    discover_links,
    links_feed,
)

DATA = Path(__file__).parent / "data" / "pages_list"
URL = "https://www.daily-example.com/news/"
SITE = "https://www.daily-example.com"

V1_ARTICLES = [
    f"{SITE}/2026/12/07/city-council-approves-budget-for-new-schools",
    f"{SITE}/world/184532-ferry-line-to-the-islands-resumes-after-storm",
    "https://daily-example.com/economy/bread-prices-hold-steady-through-winter",
    f"{SITE}/ar/news/%D8%A7%D9%81%D8%AA%D8%AA%D8%A7%D8%AD-%D8%AC%D8%B3%D8%B1-%D8%AC%D8%AF%D9%8A%D8%AF-%D9%81%D9%8A-%D8%AF%D9%85%D8%B4%D9%82",
    f"{SITE}/ru/news/20261207/vstrecha-ministrov",
    f"{SITE}/article.php?id=99812",
    f"{SITE}/sport/local-derby-ends-in-a-late-draw-at-the-old-stadium",
    f"{SITE}/world/how-we-cover-elections",
]


def links(name: str, **kwargs) -> list[Link]:
    return discover_links((DATA / name).read_bytes(), URL, **kwargs)


def test_discovery_keeps_articles_in_page_order():
    found = links("news_v1.html")
    assert [link.url for link in found] == V1_ARTICLES
    # the image link came first; the headline gave the text
    assert found[0].text == "City council approves budget for new schools"
    assert found[3].text == "افتتاح جسر جديد في دمشق"


@pytest.mark.parametrize(
    "dropped",
    [
        f"{SITE}/",  # the logo: home page
        f"{SITE}/politics/",  # navigation
        # an article-like menu item
        f"{SITE}/2026/12/07/this-link-sits-in-the-menu-and-is-not-news",
        f"{SITE}/account/login?next=/news/",
        f"{SITE}/search?q=budget",
        f"{SITE}/2026/12/07/ticker-item-about-traffic-on-the-ring-road",  # ticker
        f"{SITE}/author/lina-haddad",
        f"{SITE}/tag/education",
        f"{SITE}/category/world",
        f"{SITE}/share?url=/sport/local-derby-ends-in-a-late-draw-at-the-old-stadium",
        "https://www.facebook.com/sharer/sharer.php?u=https%3A%2F%2Fwww.daily-example.com%2Fsport%2Flocal-derby",
        "https://partner-example.org/2026/12/07/a-story-from-our-partner-site",  # other host
        f"{SITE}/news/page/2",
        f"{SITE}/news/?page=3",
        f"{SITE}/2026/12/05/old-story-about-the-harbour-crane-collapse",  # most read
        f"{SITE}/video/2026/12/06/rain-floods-underpass",  # a widget
        f"{SITE}/newsletter/signup",
        f"{SITE}/feeds/all.xml",
        f"{SITE}/2026/01/01/footer-link-to-an-old-editorial-note",  # footer
        "https://t.me/dailyexample",
    ],
)
def test_discovery_drops_furniture(dropped):
    assert canonical_url(dropped) not in {link.url for link in links("news_v1.html")}


def test_links_are_canonical_and_deduplicated():
    found = [link.url for link in links("news_v1.html")]
    assert len(found) == len(set(found))
    assert all("utm_" not in u and "fbclid" not in u and "#" not in u for u in found)


def test_a_rotated_most_read_box_brings_no_old_articles():
    first = {link.url for link in links("news_v1.html")}
    second = [link.url for link in links("news_v2.html")]
    assert set(second) - first == {
        f"{SITE}/2026/12/07/power-cuts-shortened-in-the-eastern-districts"
    }
    assert second[0] == f"{SITE}/2026/12/07/power-cuts-shortened-in-the-eastern-districts"


def test_a_selector_takes_exactly_its_links_on_any_host():
    found = links("news_v1.html", selector="main article h2 a, main article h3 a")
    assert [link.url for link in found] == [
        *V1_ARTICLES[:7],
        "https://partner-example.org/2026/12/07/a-story-from-our-partner-site",
    ]
    # a selector naming containers takes the links inside them
    inside = links("news_v1.html", selector=".most-read")
    assert len(inside) == 3
    assert inside[0].text == "Harbour crane collapse: what we know"


@pytest.mark.parametrize(
    ("selector", "ok"),
    [("main a.title", True), ("div > a[href^='/20']", True), ("a[[", False), ("   ", False)],
)
def test_check_selector(selector, ok):
    assert (check_selector(selector) is None) is ok


def test_an_invalid_selector_is_a_value_error():
    with pytest.raises(ValueError, match="invalid CSS selector"):
        links("news_v1.html", selector="a[[")


@pytest.mark.parametrize(
    ("href", "text", "kept"),
    [
        ("/2026/12/07/short", "x", True),  # a date
        ("/news/2026-12-07-council", "x", True),
        ("/story/12345", "x", True),  # a numeric id
        ("/a-long-slug-with-many-words-in-it", "x", True),  # a long slug
        ("/index.php?p=4411", "x", True),
        ("/world/some-thing", "A headline that is long enough to be a story", True),
        ("/world/some-thing", "Short", False),
        ("/world", "A headline that is long enough to be a story", False),
        ("/politics/", "Politics", False),
        ("/tags/budget-2026-and-more-words", "x", False),
        ("/2026/12/07/photo.jpg", "x", False),
        ("/files/report-2026-12-07.pdf", "x", False),
        ("#top", "Back to top", False),
        ("mailto:desk@daily-example.com", "Write to us", False),
        ("javascript:void(0)", "More", False),
        ("tel:+100", "Call", False),
        ("//cdn.daily-example.net/2026/12/07/a-b-c-d-e", "x", False),
        ("https://m.daily-example.com/2026/12/07/mobile-copy", "x", True),
        ("http://[::1/x", "x", False),
        ("/news/?page=2", "Older", False),
    ],
)
def test_one_link(href, text, kept):
    html = f'<html><body><main><a href="{href}">{text}</a></main></body></html>'
    assert bool(discover_links(html, URL)) is kept


def test_base_href_and_relative_links():
    html = (
        '<html><head><base href="https://www.daily-example.com/archive-root/"></head>'
        '<body><a href="2026/12/07/under-the-base-url">Under the base</a></body></html>'
    )
    assert [link.url for link in discover_links(html, URL)] == [
        f"{SITE}/archive-root/2026/12/07/under-the-base-url"
    ]


def test_header_inside_an_article_is_content_but_page_header_is_not():
    html = (
        "<body><header><a href='/2026/12/07/in-the-page-header'>In the page header</a></header>"
        "<article><header><h2><a href='/2026/12/07/in-a-card-header'>Card</a></h2></header>"
        "</article></body>"
    )
    assert [link.url for link in discover_links(html, URL)] == [
        f"{SITE}/2026/12/07/in-a-card-header"
    ]


def test_the_cap_and_the_limit():
    many = "".join(f'<a href="/2026/12/07/story-{i}">Story {i}</a>' for i in range(500))
    html = f"<html><body>{many}</body></html>"
    assert len(discover_links(html, URL)) == MAX_LINKS_PER_PAGE
    assert len(discover_links(html, URL, limit=7)) == 7
    assert discover_links(html, URL, limit=0) == []
    assert discover_links(html, URL, limit=10_000)[-1].url.endswith(
        f"story-{MAX_LINKS_PER_PAGE - 1}"
    )


@pytest.mark.parametrize(
    "markup",
    [
        b"",
        "",
        b"\x00" * 100,
        "<a href='/2026/12/07/x\x00y'>nul</a>",
        "<a href='/2026/12/07/ok'>\ud800 surrogate</a>",
        "<html>" + "<div>" * 200_000 + "<a href='/2026/12/07/deep'>deep</a>",
        b"<html><body>" + b"<a href='/x'>" * 50_000,
        "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><a href='/2026/12/07/e'>&e;</a>",
    ],
)
def test_hostile_pages_never_raise(markup):
    found = discover_links(markup, URL)
    assert len(found) <= MAX_LINKS_PER_PAGE
    for link in found:
        assert link.url.startswith(SITE)
        assert "\x00" not in link.text and "root:" not in link.text


def test_non_utf8_page_with_declared_charset():
    html = (
        '<html><head><meta charset="windows-1251"></head>'
        '<body><a href="/2026/12/07/s">Новости дня</a></body></html>'
    )
    found = discover_links(html.encode("cp1251"), URL)
    assert found[0].text == "Новости дня"
    found = discover_links(html.encode("cp1251"), URL, encoding="windows-1251")
    assert found[0].text == "Новости дня"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=20))
def test_any_hrefs(hrefs):
    import html as html_lib

    body = "".join(f'<a href="{html_lib.escape(h)}">{html_lib.escape(h)}</a>' for h in hrefs)
    found = discover_links(f"<body>{body}</body>", URL)
    urls = [link.url for link in found]
    assert len(urls) == len(set(urls))
    assert all(
        u.startswith(("https://www.daily-example.com/", "https://daily-example.com/")) for u in urls
    )


def test_links_become_entries_keyed_by_url():
    found = links("news_v1.html")
    feed = links_feed(found, title="The Daily Example", url=URL)
    articles = to_articles(FeedSource(id="daily", url=URL), feed, datetime(2026, 12, 7, tzinfo=UTC))
    assert [a.key for a in articles] == [link.url for link in found]
    assert [a.title for a in articles] == [link.text for link in found]
    assert articles[3].language == "ar"
    tricky = links_feed([Link(url="https://x.example/a", text="a < b & c")])
    assert (
        to_articles(FeedSource(id="x", url="x"), tricky, datetime(2026, 12, 7, tzinfo=UTC))[0].title
        == "a < b & c"
    )
