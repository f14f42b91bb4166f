"""The Members card on the dashboard: the owner re-roles and removes members; a viewer only sees the list."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.web.conftest import PASSWORD, Owner, check_accessibility, log_in, new_email, screenshot

pytestmark = pytest.mark.slow


def join(owner: Owner, role: str) -> tuple[str, str]:
    """A member who joined through an invite: its email and access token."""
    email = new_email()
    invite = owner.http.post("/v1/invites", json={"email": email, "role": role})
    assert invite.status_code == 201, invite.text
    accepted = httpx.post(
        f"{owner.base}/v1/invites/accept", json={"token": invite.json()["token"], "password": PASSWORD}
    )
    assert accepted.status_code == 201, accepted.text
    return email, str(accepted.json()["access_token"])


def roles(owner: Owner) -> dict[str, str]:
    return {m["email"]: m["role"] for m in owner.http.get("/v1/users").json()["items"]}


async def test_the_owner_manages_members_and_a_viewer_only_sees_them(
    browser: Browser, server: str, owner: Owner
) -> None:
    viewer_email, _ = join(owner, "viewer")
    admin_email, admin_token = join(owner, "admin")

    context = await browser.new_context(viewport={"width": 360, "height": 800})
    page = await context.new_page()
    await log_in(page, server, owner.email)
    members = page.locator("#members li")
    await expect(members).to_have_count(3)
    await expect(members.first).to_contain_text(f"{owner.email} (you)")
    await expect(members.first.locator("select")).to_have_count(0)  # nobody changes their own role

    async with page.expect_response(lambda r: r.request.method == "PATCH") as patched:
        await page.get_by_label(f"Role of {viewer_email}").select_option("admin")
    assert (await patched.value).status == 200
    await expect(page.get_by_label(f"Role of {viewer_email}")).to_have_value("admin")
    assert roles(owner)[viewer_email] == "admin"

    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name=f"Remove: {admin_email}").click()
    await expect(members).to_have_count(2)
    assert admin_email not in roles(owner)
    gone = httpx.get(f"{server}/v1/users/me", headers={"Authorization": f"Bearer {admin_token}"})
    assert gone.status_code == 401  # the removed member's token died with it

    # Dismissing the confirmation removes nobody.
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.get_by_role("button", name=f"Remove: {viewer_email}").click()
    await expect(members).to_have_count(2)
    assert viewer_email in roles(owner)
    await check_accessibility(page, "dashboard-members")
    await page.locator("#members-section").scroll_into_view_if_needed()
    await screenshot(page, "dashboard-members-360")
    await context.close()

    reader_email, _ = join(owner, "viewer")
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, server, reader_email)
    await expect(page.locator("#members li")).to_have_count(3)
    await expect(page.locator("#members select")).to_have_count(0)
    await expect(page.locator("#members button")).to_have_count(0)
    await expect(page.locator("#members")).to_contain_text(viewer_email)
    await check_accessibility(page, "dashboard-members-viewer")
    await context.close()
