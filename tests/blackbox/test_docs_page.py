"""The interactive API page (/api/v1/docs): served offline with a strict policy, loading only its
own script and style, and driven entirely by /api/v1/openapi.json (no browser needed here)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

PAGE = "/api/v1/docs"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class Refs(HTMLParser):
    """Scripts (src or inline) and stylesheets of a page, plus inline style attributes."""

    def __init__(self):
        super().__init__()
        self.scripts: list[str | None] = []
        self.styles: list[str] = []
        self.inline_styles = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a.get("src"))
        elif tag == "link" and a.get("rel") == "stylesheet":
            self.styles.append(a["href"])
        elif tag == "style":
            self.inline_styles += 1
        if "style" in a or any(k.startswith("on") for k in a):
            self.inline_styles += 1


def assert_strict(resp, content_type: str) -> None:
    ctx = f"{resp.request.url} -> {resp.status_code} {dict(resp.headers)}"
    assert resp.status_code == 200, ctx
    assert resp.headers["content-type"].split(";")[0].strip() == content_type, ctx
    assert resp.headers.get("x-content-type-options") == "nosniff", ctx
    csp = resp.headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}
    assert directives.get("default-src") == ["'self'"], ctx
    for name in ("script-src", "style-src", "connect-src"):
        assert directives.get(name, ["'self'"]) == ["'self'"], ctx
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, ctx


def fetch_page(api):
    page = api.get(PAGE)
    assert_strict(page, "text/html")
    refs = Refs()
    refs.feed(page.text)
    return page, refs


def same_origin(api, ref: str) -> str:
    url = urljoin(api.base + PAGE, ref)
    assert urlsplit(url).netloc == urlsplit(api.base).netloc, f"{ref} leaves the origin"
    return urlsplit(url).path


def test_page_is_public_and_strict(api):
    page, refs = fetch_page(api)
    assert refs.scripts and all(refs.scripts), f"inline script in the page: {refs.scripts}"
    assert refs.inline_styles == 0, "inline style or event handler in the page"


def test_page_loads_its_script_and_style_from_this_server(api):
    _, refs = fetch_page(api)
    for src in refs.scripts:
        assert_strict(api.get(same_origin(api, src)), "text/javascript")
    assert refs.styles
    for href in refs.styles:
        assert_strict(api.get(same_origin(api, href)), "text/css")


def test_script_renders_whatever_the_document_holds(api):
    """The script reads openapi.json beside the page and walks its paths, tags and operations;
    it names no operation itself, so every documented operation is rendered."""
    _, refs = fetch_page(api)
    script = api.get(same_origin(api, refs.scripts[0])).text
    fetched = re.findall(r"fetch\('([^']+)'", script)
    assert fetched, "the script fetches no document"
    doc_path = same_origin(api, fetched[0])
    assert doc_path == "/api/v1/openapi.json", doc_path
    doc = api.get(doc_path).json()
    for key in ("paths", "tags", "operationId", "summary", "responses", "requestBody", "parameters"):
        assert key in script, f"the script does not read {key}"

    tags = {t["name"] for t in doc["tags"]}
    ids = []
    for path, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            ids.append(op["operationId"])
            assert op.get("summary"), f"{method} {path} has no summary to show"
            assert op.get("responses"), f"{method} {path} has no responses to show"
            assert set(op.get("tags", [])) <= tags and op.get("tags"), f"{method} {path}: tags {op.get('tags')}"
    hard_coded = [i for i in ids if f"'{i}'" in script or f'"{i}"' in script]
    assert not hard_coded, f"the script names operations itself: {hard_coded}"
    # The page documents itself too.
    assert {"getApiDocs", "getApiDocsScript", "getApiDocsStyle"} <= set(ids)
