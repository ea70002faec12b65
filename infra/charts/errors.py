"""What goes wrong with charts, as the project's exceptions. No message ever holds
a secret's value: problems name the secret, never what it is."""

from __future__ import annotations

from infra.errors import InfraError, SiteFileError


class ChartError(SiteFileError):
    """A chart, a site's settings for it, or its rendered project is invalid.

    Raised before anything is deployed; a SiteFileError so that the CLI exits 2
    and prints one line per problem, each naming the file or the site field.
    """


class AppDeployError(InfraError):
    """TrueNAS refused or failed an app (docker.update, app.create/update/delete)."""


class AppCrashed(AppDeployError):
    """An app reached CRASHED instead of RUNNING; the message carries the reasons."""

    def __init__(self, app: str, reasons: list[str]) -> None:
        self.app = app
        self.reasons = reasons
        detail = "; ".join(reasons) if reasons else "TrueNAS gave no reason"
        super().__init__(f"app {app} CRASHED instead of reaching RUNNING: {detail}")
