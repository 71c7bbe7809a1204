"""A greeting service: the smallest application worth deploying."""

from markupsafe import escape

__version__ = "0.1.0"


def greet(name: str) -> str:
    """Greet someone by name, safe to put in a web page."""
    name = str(escape(name))
    return f"Hello, {name}!"
