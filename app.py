"""The Year Above: `create_app` builds the Flask site; `python app.py` serves it locally."""

from __future__ import annotations

import logging

from flask import Flask

from kb import config
from kb.cli import kb_cli
from kb.service import KnowledgeBase
from kb.web import init_app


def create_app(test_config: dict | None = None, embedder=None) -> Flask:
    """Application factory: defaults, then KB_*/FLASK_* environment variables, then `test_config`.

    Args:
        test_config: Settings that override everything else (tests, scripts).
        embedder: An encoder to use instead of the configured model (tests).
    """
    app = Flask(__name__, static_folder=None)
    app.config.from_mapping(config.defaults())
    app.config.from_prefixed_env("KB", loads=str)
    # from_prefixed_env strips the prefix: put KB_* keys back under their full names
    for s in config.SETTINGS:
        short = s.name[3:]
        if short in app.config:
            app.config[s.name] = app.config.pop(short)
    app.config.from_prefixed_env("FLASK")
    if test_config:
        app.config.from_mapping(test_config)
    settings = config.validate(app.config)
    app.config.update(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    init_app(app, KnowledgeBase(settings, embedder=embedder))
    app.cli.add_command(kb_cli)
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=5000)
