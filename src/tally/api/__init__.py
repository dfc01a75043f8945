"""The HTTP API (`tally serve`): `create_app(project)` builds the FastAPI app; `check_bind(host,
settings)` refuses a non-loopback host when no API key is configured."""

from tally.api.security import check_bind


def create_app(project, *, settings=None):
    """The FastAPI app over `project` (see `tally.api.app.create_app`)."""
    from tally.api.app import create_app as build

    return build(project, settings=settings)


__all__ = ["check_bind", "create_app"]
