"""`run.py wechat menu` with the H5 shop on: the custom menu gets a `view` button to `<public_url>/h5/` within
WeChat's limits (3 top-level buttons, 5 under each), in the menu's language; no room is an error and nothing is
created; without `server.public_url` there is no H5 shop and no button."""
from __future__ import annotations

from pathlib import Path

import yaml

from tests.fake_wechat_api import FakeWeChatAPI
from tests.test_wechat_cli import run, write_config
from tests.wechat_harness import APPID, SECRET

PUBLIC = "https://shop.example.com"


def with_public_url(cfg: Path, url: str = PUBLIC, **store: object) -> Path:
    data = yaml.safe_load(cfg.read_text())
    data["server"]["public_url"] = url
    if store:
        data["store"] = store
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True))
    return cfg


async def test_the_default_menu_gets_the_shop_under_more(tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api:
        code, out, err = await run(with_public_url(write_config(tmp_path, api)), "wechat", "menu")
        assert code == 0, err
        assert f"商店 ({PUBLIC}/h5/)" in out
        # The default menu has its 3 top-level buttons: the Shop goes under the last sub-menu with room.
        assert api.menus == [{"button": [
            {"type": "click", "name": "商品", "key": "catalog"},
            {"type": "click", "name": "我的订单", "key": "orders"},
            {"name": "更多", "sub_button": [{"type": "click", "name": "帮助", "key": "help"},
                                          {"type": "click", "name": "语言 Language", "key": "language"},
                                          {"type": "view", "name": "商店", "url": f"{PUBLIC}/h5/"}]}]}]


async def test_a_menu_with_room_gets_a_top_level_shop_button_once(tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api:
        cfg = with_public_url(write_config(tmp_path, api, menu=[{"name": "Orders", "action": "orders"}]),
                              languages=["en"], default_language="en")
        code, _, err = await run(cfg, "wechat", "menu")
        assert code == 0, err
        assert api.menus[-1] == {"button": [{"type": "click", "name": "Orders", "key": "orders"},
                                            {"type": "view", "name": "Shop", "url": f"{PUBLIC}/h5/"}]}
        # A menu that already opens the H5 shop keeps its own button and gets no second one.
        cfg = with_public_url(write_config(tmp_path, api, menu=[{"name": "逛逛", "url": f"{PUBLIC}/h5/"}]))
        code, _, err = await run(cfg, "wechat", "menu")
        assert code == 0, err
        assert api.menus[-1] == {"button": [{"type": "view", "name": "逛逛", "url": f"{PUBLIC}/h5/"}]}


async def test_a_full_menu_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    five = [{"name": f"帮助{i}", "action": "help"} for i in range(5)]
    async with FakeWeChatAPI(APPID, SECRET) as api:
        cfg = with_public_url(write_config(tmp_path, api, menu=[
            {"name": "商品", "action": "catalog"}, {"name": "A", "sub_button": five},
            {"name": "B", "sub_button": five}]))
        code, _, err = await run(cfg, "wechat", "menu")
        assert code == 2
        assert "no room for the H5 shop's button" in err or "无法加入 H5 商店按钮" in err
        assert api.menus == []


async def test_no_public_url_no_shop_button(tmp_path: Path) -> None:
    async with FakeWeChatAPI(APPID, SECRET) as api:
        code, out, err = await run(write_config(tmp_path, api), "wechat", "menu")
        assert code == 0, err
        assert "server.public_url" in err
        assert "/h5/" not in str(api.menus) and len(api.menus) == 1
        # wechat.h5.enabled: false: no button and no word about it.
        cfg = with_public_url(write_config(tmp_path, api, h5={"enabled": False}))
        code, out, err = await run(cfg, "wechat", "menu")
        assert code == 0 and "public_url" not in err
        assert "/h5/" not in str(api.menus[-1])
