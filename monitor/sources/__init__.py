"""Sources without a feed of their own, each a pure parser the fetcher feeds with bytes.

- ``telegram``: a public channel's web preview (``https://t.me/s/NAME``) → one
  ``RawEntry`` per post, plus the ``?before=`` paging decision.
- ``page``: a page that lists articles → the article links on it.
- ``opml``: subscription lists in and out (``monitor feeds import/export``).

HTML is parsed with lxml (libxml2), whose tree depth is capped (about 256
levels): a hostile page nested a million deep costs linear time, not the
quadratic time an HTML5 tree builder spends on it.
"""
