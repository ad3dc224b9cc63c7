"""`/docs` on every service: Swagger UI from the installed package, no other host named
anywhere on the page, and a CSP that admits no inline script and no other origin."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import import_module, resources

import httpx
import pytest

from shared import docs
from shared.settings import SERVICES
from tests.system import make_settings


class Links(HTMLParser):
    """Every URL the page loads or links, and whether any script is inline."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href", "data-openapi-url") and v]
        self._in_script = tag == "script" and "src" not in found

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def directives(csp: str) -> dict[str, list[str]]:
    parts = (d.split() for d in csp.split(";") if d.strip())
    return {name: values for name, *values in parts}


@pytest.mark.parametrize("service", SERVICES)
async def test_docs_page_names_no_other_host_and_carries_a_strict_csp(service: str) -> None:
    app = import_module(f"services.{service}.bootstrap").bootstrap(make_settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert not re.search(r"(https?:)?//", page.text), "the page names a host"
        links = Links()
        links.feed(page.text)
        assert links.inline_scripts == 0
        assert sorted(links.urls) == sorted(
            [
                "/docs/assets/favicon.png",
                "/docs/assets/swagger-ui.css",
                "/docs/assets/swagger-ui-bundle.js",
                "/docs/assets/swagger-init.js",
                "/openapi.json",
            ]
        )
        csp = directives(page.headers["content-security-policy"])
        assert csp["default-src"] == ["'none'"]
        for name in ("script-src", "style-src", "connect-src"):
            assert csp[name] == ["'self'"], name
        assert csp["frame-ancestors"] == ["'none'"]
        for url in links.urls:
            if url.startswith("/docs/assets/"):
                asset = await client.get(url)
                assert asset.status_code == 200, url
                assert asset.headers["x-content-type-options"] == "nosniff"
        init = await client.get("/docs/assets/swagger-init.js")
        assert not re.search(r"https?:", init.text)
        assert 'credentials = "omit"' in init.text
        assert (await client.get("/docs/assets/..%2Fdocs.py")).status_code == 404
        assert (await client.get("/redoc")).status_code == 404  # it would load a CDN's script


def test_assets_are_the_installed_packages_files() -> None:
    for package, path, _ in docs.ASSETS.values():
        assert resources.files(package).joinpath(path).is_file(), (package, path)
