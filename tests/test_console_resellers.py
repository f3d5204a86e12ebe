"""The console's resellers pages over HTTP: an owner sees the accounts and a wallet's statement, changes a tier,
creates an API key whose secret is shown once and works against the B2B API's key lookup, and revokes it; every
change is audited with the merchant's identity; bad input is refused and changes nothing; staff get 403."""
from __future__ import annotations

import re
from pathlib import Path

from tests.console_kit import OWNER, STAFF, ConsoleKit, open_console


async def _admin_entries(kit: ConsoleKit) -> list[dict]:
    async with kit.app.shop.uow() as uow:
        return [e.detail for e in await uow.audit.latest("admin", OWNER.key, limit=100)]


async def test_accounts_statement_tier_and_refusals(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit, kit.client(OWNER) as http:
        desk = kit.app.resellers
        acme = await desk.create("Acme", discount_percent=10, credit_limit=500)
        await desk.top_up(acme.id, 12_345, actor="cli", ref="bank-1", note="=HYPERLINK(1)")
        status, html = await kit.get(http, "/resellers")
        assert status == 200 and f'data-reseller="{acme.id}"' in html and 'data-balance="12345"' in html
        status, html = await kit.get(http, f"/resellers/{acme.id}")
        assert status == 200 and 'data-amount="12345"' in html and "=HYPERLINK(1)" in html
        assert 'data-figure="discount">10%' in html

        # a tier change, as `run.py reseller update`: audited by the desk and with the merchant's identity
        status, html = await kit.post(http, f"/resellers/{acme.id}/tier", {
            "discount": "25", "credit": "1000", "status": "suspended", "prices": "CARD10=850\n"})
        assert status == 200 and 'data-done="tier"' in html and 'data-figure="discount">25%' in html
        r = await desk.get(acme.id)
        assert (r.discount_percent, r.credit_limit, r.status, r.prices) == (25, 1000, "suspended", {"CARD10": 850})
        assert any(d.get("op") == "tier" and d.get("reseller") == acme.id and "refused" not in d
                   for d in await _admin_entries(kit))

        # refusals: each shown with its code, nothing changed
        for form, code in (({"discount": "101"}, "bad_discount"), ({"discount": "x"}, "bad_discount"),
                           ({"credit": "-5"}, "bad_credit_limit"), ({"prices": "CARD10=abc"}, "bad_price"),
                           ({"status": "gone"}, "bad_status")):
            status, html = await kit.post(http, f"/resellers/{acme.id}/tier", form)
            assert status == 400 and f'data-refusal="{code}"' in html, form
        assert await desk.get(acme.id) == r
        status, html = await kit.post(http, "/resellers", {"name": "Acme"})
        assert status == 400 and 'data-refusal="name_taken"' in html
        for bad in ("999999", "abc", "-1"):
            status, html = await kit.get(http, f"/resellers/{bad}")
            assert status == 404 and 'data-refusal="unknown_reseller"' in html
        status, html = await kit.post(http, "/resellers/999999/tier", {"discount": "5"})
        assert status == 404

        # a CSRF-less POST is refused by the frame and changes nothing
        status, html = await kit.post(http, f"/resellers/{acme.id}/tier", {"discount": "0"}, csrf=False)
        assert status == 403 and 'data-refusal="csrf"' in html
        assert (await desk.get(acme.id)).discount_percent == 25

        status, html = await kit.post(http, "/resellers", {"name": "Beta", "discount": "5", "credit": "0"})
        assert status == 200 and 'data-done="created"' in html and "Beta" in html
        refused = [d for d in await _admin_entries(kit) if d.get("refused")]
        assert {d["refused"] for d in refused} >= {"bad_discount", "bad_price", "name_taken"}


async def test_an_api_key_secret_is_shown_once_and_revoked_keys_stop_working(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path) as kit, kit.client(OWNER) as http:
        desk = kit.app.resellers
        acme = await desk.create("Acme")
        await kit.get(http, f"/resellers/{acme.id}")  # the page's CSRF token
        async with http.post(f"{kit.base}/console/resellers/{acme.id}/keys", allow_redirects=False,
                             data={"rate": "7", "csrf": kit.csrf[id(http)]}) as r:
            assert r.status == 303  # post/redirect/get: to the one page that shows the secret
            shown_url = r.headers["Location"].removeprefix("/console")
        status, html = await kit.get(http, shown_url)
        assert status == 200
        key_id = re.search(r'data-key-id="(rk_[0-9a-f]+)"', html).group(1)
        secret = re.search(r'<p class="secret" data-secret>([^<]+)</p>', html).group(1)
        found = await desk.api_key(key_id)
        assert found is not None and found[0].secret == secret and found[0].rate_per_second == 7

        # reloading that page shows it no more, and makes no second key
        status, again = await kit.get(http, shown_url)
        assert status == 410 and secret not in again and 'data-refusal="shown"' in again
        assert len(await desk.keys_of(acme.id)) == 1

        # never again: not on the account's page, not in the audit log
        status, html = await kit.get(http, f"/resellers/{acme.id}")
        assert key_id in html and secret not in html and "data-secret" not in html
        async with kit.app.shop.uow() as uow:
            log = await uow.audit.search(action=None, actor=None, order_id=None, since=None, until=None,
                                         before_id=None, limit=500)
        assert log and all(secret not in str(e.detail) for e in log)
        assert any(e.detail.get("key_id") == key_id and e.actor == OWNER.key for e in log)

        # another reseller's key, or a made-up one, is refused and nothing is revoked
        other = await desk.create("Other")
        status, html = await kit.post(http, f"/resellers/{other.id}/keys/{key_id}/revoke")
        assert status == 404 and 'data-refusal="no_key"' in html
        status, html = await kit.post(http, f"/resellers/{acme.id}/keys/rk_nope/revoke")
        assert status == 404 and 'data-refusal="no_key"' in html
        desk.api_keys.forget()
        assert await desk.api_key(key_id) is not None
        status, html = await kit.post(http, f"/resellers/{acme.id}/keys", {"rate": "0"})
        assert status == 400 and 'data-refusal="bad_rate"' in html

        status, html = await kit.post(http, f"/resellers/{acme.id}/keys/{key_id}/revoke")
        assert status == 200 and 'data-done="revoked"' in html
        assert f'data-key="{key_id}" data-key-status="revoked"' in html
        desk.api_keys.forget()
        assert await desk.api_key(key_id) is None


async def test_staff_are_kept_off_the_resellers_pages(sqlite_url: str, tmp_path: Path) -> None:
    async with open_console(sqlite_url, tmp_path) as kit, kit.client(STAFF) as http:
        acme = await kit.app.resellers.create("Acme")
        for path in ("/resellers", f"/resellers/{acme.id}"):
            status, html = await kit.get(http, path)
            assert status == 403 and 'data-refusal="owner_only"' in html
        status, html = await kit.post(http, f"/resellers/{acme.id}/keys", {})
        assert status == 403
        assert await kit.app.resellers.keys_of(acme.id) == []
