"""User text in Markdown labels: a saved result whose model name is Markdown and bare URLs, opened from the
sidebar, shows no link and no image to that address on any page."""

from __future__ import annotations

import dataclasses
import re

from apptools import run_example
from markdown_it import MarkdownIt

EVIL = "[x](http://198.51.100.7/) ![i](http://198.51.100.7/p.png) www.198.51.100.7.example mail@198.51.100.7.example"
PAGES = ("pages/attribute.py", "pages/drilldown.py", "pages/compare.py", "pages/learn.py", "pages/history.py",
         "pages/dataset.py")
# What GitHub-flavoured Markdown (Streamlit's renderer) turns into a link in text, after escapes are resolved.
AUTOLINK = re.compile(r"(?i)https?://|www\.|[\w.+-]@[\w-]")


def _markdown_labels(app) -> list[str]:
    """Every string this script run rendered as Markdown: text elements, alerts and widget labels."""
    texts = [el.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "header",
                                   "subheader") for el in app.get(kind)]
    for kind in ("selectbox", "multiselect", "radio", "checkbox", "number_input", "text_input", "text_area",
                 "button", "slider"):
        texts += [el.label for el in app.get(kind)]
    texts += [el.proto.text for el in app.get("progress")]
    return [t for t in texts if t]


def test_a_model_name_with_links_and_bare_urls_is_never_a_link_on_any_page(at):
    run_example(at, "lighthouse", response="In 1874.")
    evil = dataclasses.replace(at.session_state["result"], model=EVIL, proxy_model=EVIL)
    app = at.__class__.from_file(at._script_path, default_timeout=120).run()
    app.sidebar.file_uploader(key="result_file").set_value(("evil.json", evil.to_json().encode(), "application/json"))
    app.run()
    assert app.session_state["result"].model == EVIL
    seen_model = False
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception, (page, app.exception)
        for label in _markdown_labels(app):
            rendered = MarkdownIt("commonmark").renderInline(label)
            assert "<a " not in rendered and "<img" not in rendered, (page, label)
            assert not AUTOLINK.search(rendered), (page, label)  # no bare URL, www. name or e-mail left to link
            seen_model = seen_model or "198.51.100.7" in rendered
    assert seen_model  # the name is shown (the Compare page's caption), as text
