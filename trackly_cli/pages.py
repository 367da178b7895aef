"""The few HTML pages the server answers with: interstitial / Continue pages and errors.

Small valid HTML5 with a mobile viewport; every operator-supplied string is HTML-escaped.
"""

from __future__ import annotations

from html import escape

from trackly_cli.core.clicks import Page

STYLE = (
    "body{margin:0;font:17px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;"
    "background:#f6f7f9;color:#1d2330;display:flex;min-height:100vh;align-items:center;"
    "justify-content:center}main{max-width:28rem;margin:1.5rem;padding:2rem;background:#fff;"
    "border-radius:14px;box-shadow:0 2px 12px rgba(0,0,0,.08);text-align:center}"
    "h1{font-size:1.4rem;margin:0 0 .75rem}p{margin:0 0 1.5rem;color:#4a5263}"
    "a.cta{display:inline-block;padding:.8rem 1.8rem;border-radius:10px;background:#2457d6;"
    "color:#fff;text-decoration:none;font-weight:600}"
)

# Inline style only, no scripts, no external assets.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"


def _meta_tags(meta: dict) -> str:
    tags = []
    for key, value in meta.items():
        attribute = "property" if key.startswith(("og:", "fb:", "article:")) else "name"
        tags.append(f'<meta {attribute}="{escape(key)}" content="{escape(str(value))}">')
    return "\n".join(tags)


def _document(title: str, body: str, head: str = "") -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{escape(title)}</title>
{head}<style>{STYLE}</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""


def interstitial(page: Page, go_url: str) -> str:
    meta = dict(page.meta)
    meta.setdefault("og:title", page.title)
    if page.description:
        meta.setdefault("og:description", page.description)
        meta.setdefault("description", page.description)
    meta.setdefault("twitter:card", "summary")
    description = f"<p>{escape(page.description)}</p>\n" if page.description else ""
    return _document(
        page.title,
        f"<h1>{escape(page.title)}</h1>\n{description}"
        f'<a class="cta" href="{escape(go_url)}" rel="nofollow">{escape(page.cta)}</a>',
        head=_meta_tags(meta) + "\n",
    )


def message(title: str, text: str) -> str:
    return _document(title, f"<h1>{escape(title)}</h1>\n<p>{escape(text)}</p>")


NOT_FOUND = message("Link not found", "This link does not exist or has expired.")
