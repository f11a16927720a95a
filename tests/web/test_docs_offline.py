"""The API docs work on a closed network: every asset the page loads is served by us."""

from __future__ import annotations

import re

import httpx


def test_docs_page_loads_nothing_from_outside(client: httpx.Client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert urls, page.text[:500]
    assert not [u for u in urls if re.match(r"^(https?:)?//", u)], urls
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/ingest" in spec["paths"]
