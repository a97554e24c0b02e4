"""MkDocs hook: the README's links, written for the repository root, resolve from docs/index.md.

docs/index.md includes README.md with pymdownx.snippets; the README links ``docs/X.md`` and ``docs/images/...``
(right on GitHub, where it sits at the root). A Markdown preprocessor that runs after the include drops the
``docs/`` prefix from those link targets, so the site's link check sees ``X.md`` beside index.md.
"""

from __future__ import annotations

import re

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

_DOCS_LINK = re.compile(r"\]\(docs/")


class _ReadmeLinks(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        return [_DOCS_LINK.sub("](", line) for line in lines]


class ReadmeLinksExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:  # the Markdown API names it
        # pymdownx.snippets runs at priority 32; lower runs later, so the included README is already there.
        md.preprocessors.register(_ReadmeLinks(md), "difair_readme_links", 31)


def on_config(config):  # the MkDocs hook event
    config.markdown_extensions.append(ReadmeLinksExtension())
    return config
