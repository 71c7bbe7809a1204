"""The git incident store: incidents as `incidents/<id>.json` in the change-management repo.

They live beside the change requests (branch `main`), written in one commit per
reconciliation, so `git log -- incidents/` is their audit trail. ServiceNow users keep them in
ServiceNow's incident table instead (`blocks.servicenow.ServiceNowIncidents`).
"""

from __future__ import annotations

from pydantic import HttpUrl, ValidationError

from blocks.change_management import BRANCH, LOGO, ChangeRepo
from changeflow.change_notes import author_of
from changeflow.errors import IntegrityError
from changeflow.incidents import Incident

__all__ = ["INCIDENTS_DIR", "GitIncidents"]

INCIDENTS_DIR = "incidents"


class GitIncidents(ChangeRepo):
    """Incidents kept in the git change-management repo, one commit per reconciliation.

    Attributes:
        remote_url: git URL of the bare change-management remote.
        cache_dir: folder for the local mirror; default `$CHANGEFLOW_HOME/repos`.
    """

    _block_type_name = "changeflow Git Incidents"
    _block_type_slug = "changeflow-git-incidents"
    _logo_url = LOGO
    _documentation_url = HttpUrl("https://docs.prefect.io/v3/develop/blocks")
    _code_example = """
    ```python
    from blocks.incidents import GitIncidents

    store = GitIncidents.load("BLOCK_NAME")
    for incident in store.incidents():
        print(incident.line)
    ```
    """
    _description = (
        "changeflow incidents in the git change-management repository: incidents/<id>.json on "
        "branch main, one commit per reconciliation."
    )

    def put_incidents(
        self, incidents: list[Incident], message: str, *, by: str | None = None
    ) -> None:
        """Write incidents as `incidents/<id>.json`, all in one commit (none: no commit).

        Args:
            incidents: the records to write (those `changeflow.incidents.reconcile` returns).
            message: why, for the commit message.
            by: who, the commit's author.
        """
        files: dict[str, bytes | None] = {
            f"{INCIDENTS_DIR}/{i.id}.json": i.to_json() + b"\n" for i in incidents
        }
        if not files:
            return
        opened = sum(1 for i in incidents if i.state == "open")
        text = f"incidents: {message}\n\n{opened} open, {len(files) - opened} closed\n"
        self.git.commit(BRANCH, lambda _parent: files, text, author=author_of(by))
        self.name_head()  # so a clone of the remote shows the records

    def incidents(self) -> list[Incident]:
        """Return every stored incident, sorted by id.

        Raises:
            IntegrityError: for a file that is not an incident, or holds another one.
        """
        head = self.head()
        if head is None:
            return []
        paths = [p for p in self.git.list_files(head, INCIDENTS_DIR) if p.endswith(".json")]
        out = []
        for path, data in sorted(self.git.read_files(head, paths).items()):
            try:
                incident = Incident.model_validate_json(data)
            except ValidationError as exc:
                raise IntegrityError(
                    f"{path} at {head[:12]} is not an incident: {exc.errors()[0]['msg']}"
                ) from None
            if path != f"{INCIDENTS_DIR}/{incident.id}.json":
                raise IntegrityError(f"{path} at {head[:12]} holds {incident.id}")
            out.append(incident)
        return out
