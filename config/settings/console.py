"""The merchant's web console (`console:`), served under `/console/` by the store's HTTP server."""
from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_STAFF = re.compile(r"^(telegram:-?\d{1,20}|wechat:[A-Za-z0-9_-]{1,64})$")


class Console(BaseModel):
    """The web console ([Operating: the console](operating.md#the-web-console)). Merchants (`telegram.admins`,
    `wechat.admins`) are its owners; they and `staff` open it with a one-time link the bot sends for `/console`."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    enabled: bool = Field(False, description="serve the console under `/console/` on the HTTP server (the server "
                                             "starts for it); its links are built from `server.public_url`")
    staff: list[str] = Field(default_factory=list,
                             description="staff who may open the console but not its finance, export or key pages: "
                                         "`telegram:USER_ID` or `wechat:OPENID`")
    link_minutes: int = Field(10, ge=1, le=60, description="how long a login link is good for (once)")
    session_hours: int = Field(12, ge=1, le=720, description="a session ends this long after its login")
    idle_minutes: int = Field(120, ge=5, le=43_200, description="... or after this long without a page load")
    max_upload_mb: int = Field(64, ge=1, le=2048, description="the largest codes file the console takes (read "
                                                              "as a stream, never whole into memory)")

    @field_validator("staff")
    @classmethod
    def _check_staff(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _STAFF.match(v)]
        if bad:
            raise ValueError(f"staff entries must be telegram:USER_ID or wechat:OPENID (got {bad[0][:70]!r})")
        return value
