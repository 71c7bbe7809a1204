"""The ServiceNow blocks: change requests in `change_request`, incidents in `incident`.

`client` holds what they share (the instance, credentials, Table API calls and errors);
`changes` the change-management block; `incidents` the incident store.
"""

from __future__ import annotations

from blocks.servicenow.changes import (
    ATTACHMENT_NAME,
    PRIORITIES,
    STATES,
    ServiceNowChangeManagement,
    change_fields,
)
from blocks.servicenow.client import ServiceNowError
from blocks.servicenow.incidents import ServiceNowIncidents, incident_fields

__all__ = [
    "ATTACHMENT_NAME",
    "PRIORITIES",
    "STATES",
    "ServiceNowChangeManagement",
    "ServiceNowError",
    "ServiceNowIncidents",
    "change_fields",
    "incident_fields",
]
