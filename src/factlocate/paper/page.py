"""One self-contained HTML page: plotly.js inlined once, each figure a div, markdown tables as HTML.

The markdown is the small subset factlocate writes itself: paragraphs, pipe tables,
bullet lists, **bold** and `code`.
"""
from __future__ import annotations

import html
import re

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; vertical-align: top; }
td.num, th.num { text-align: right; } tr:nth-child(even) { background: #fafafa; }
pre { background: #f5f5f5; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.meta { color: #555; font-size: 0.9em; } .figure { overflow-x: auto; margin: 1em 0; }
.paper { background: #f7f7fb; border-left: 4px solid #88a; padding: 0.4em 1em; margin: 1em 0; }
details { margin: 0.5em 0; } nav a { margin-right: 1em; }
"""


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def _table(lines: list[str]) -> str:
    head, body = _cells(lines[0]), [_cells(l) for l in lines[2:]]
    align = ["num" if c.strip().endswith(":") else "" for c in _cells(lines[1])] if len(lines) > 1 else []
    def row(cells, tag):
        return "<tr>" + "".join(f'<{tag} class="{align[i] if i < len(align) else ""}">{_inline(c)}</{tag}>'
                                for i, c in enumerate(cells)) + "</tr>"
    return "<table>" + row(head, "th") + "".join(row(r, "td") for r in body) + "</table>"


def markdown(text: str) -> str:
    """HTML for factlocate's markdown subset."""
    out, block = [], []

    def flush():
        if not block:
            return
        if block[0].startswith("|"):
            out.append(_table(block))
        elif all(l.startswith("- ") for l in block):
            out.append("<ul>" + "".join(f"<li>{_inline(l[2:])}</li>" for l in block) + "</ul>")
        else:
            out.append("<p>" + _inline(" ".join(block)) + "</p>")
        block.clear()

    for line in text.splitlines():
        if not line.strip():
            flush()
        elif block and line.startswith("|") != block[0].startswith("|"):
            flush()
            block.append(line)
        else:
            block.append(line)
    flush()
    return "\n".join(out)


def figure(fig, div_id: str) -> str:
    """A plotly figure as a div with a fixed id, so an unchanged report renders to the same bytes."""
    return '<div class="figure">' + fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id) + "</div>"


def block(b, div_id: str) -> str:
    return markdown(b) if isinstance(b, str) else figure(b, div_id)


def page(title: str, intro: str, sections: list[dict], settings_text: str | None = None) -> str:
    """The page; each section is {key, title, settings, command, seconds, finished, paper, blocks}.
    `settings_text` (the committed settings file) is shown under the introduction."""
    from plotly.offline import get_plotlyjs

    nav = " ".join(f'<a href="#{s["key"]}">{html.escape(s["title"].split(":")[0], quote=False)}</a>' for s in sections)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title, quote=False)}</title>",
             f"<style>{CSS}</style><script>{get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title, quote=False)}</h1>", markdown(intro)]
    if settings_text is not None:
        parts.append(f"<details><summary>Settings file</summary><pre>{html.escape(settings_text)}</pre></details>")
    parts.append(f"<nav>{nav}</nav>")
    for s in sections:
        settings = ", ".join(f"{k} {'default' if v is None else v}" for k, v in s["settings"].items())
        seconds = ("not run yet" if s["seconds"] is None else
                   f"{s['seconds']:,.0f} s" + ("" if s.get("finished", True) else " so far"))
        parts += [f'<h2 id="{s["key"]}">{html.escape(s["title"], quote=False)}</h2>',
                  f'<p class="meta">Settings: {html.escape(settings)}. Wall time: {seconds}.</p>',
                  f"<details><summary>Command</summary><pre>{html.escape(s['command'])}</pre></details>"]
        parts += [block(b, f"{s['key']}-{j}") for j, b in enumerate(s["blocks"])]
        if s.get("paper"):
            parts.append(f'<div class="paper"><b>The paper</b>{markdown(s["paper"])}</div>')
    parts.append("</body></html>")
    return "\n".join(parts)
