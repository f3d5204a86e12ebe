"""`run.py` with WeChat configured, as real processes: `wechat menu` creates the custom menu from the config,
and the store serves the /wechat callback."""
from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import yaml

from tests.fake_supplier import FakeSupplier
from tests.fake_wechat_api import FakeWeChatAPI, WeChatServer
from tests.helpers import free_port
from tests.wechat_harness import APPID, SECRET, TOKEN

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp_path: Path, api: FakeWeChatAPI, port: int = 8080, **wechat: object) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "server": {"host": "127.0.0.1", "port": port},
        "wechat": {"appid": APPID, "token": TOKEN, "secret": "${WX_SECRET}", "api_base": api.base, **wechat},
        "catalog": [{"sku": "GAME", "title": {"en": "Game card", "zh_CN": "游戏点卡"}, "price": 1000}],
    }, allow_unicode=True))
    return cfg


async def run(cfg: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "run.py"), "--config", str(cfg), *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env={"WX_SECRET": SECRET, "PATH": "/usr/bin:/bin"})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_wechat_menu_creates_the_custom_menu_from_the_config(tmp_path):
    async with FakeWeChatAPI(APPID, SECRET) as api:
        cfg = write_config(tmp_path, api, menu=[
            {"name": "商品", "action": "cat"},
            {"name": "更多", "sub_button": [{"name": "我的订单", "action": "os:0"},
                                          {"name": "官网", "url": "https://shop.example.com"}]}])
        code, out, err = await run(cfg, "wechat", "menu")
        assert code == 0, err
        assert "custom menu created (2 buttons)" in out
        assert api.menus == [{"button": [
            {"type": "click", "name": "商品", "key": "cat"},
            {"name": "更多", "sub_button": [{"type": "click", "name": "我的订单", "key": "os:0"},
                                          {"type": "view", "name": "官网", "url": "https://shop.example.com"}]}]}]
        # WeChat refusing it (e.g. a name too long for it) is an error exit with the errcode.
        api.fail_next("menu/create", 40018)
        code, _, err = await run(cfg, "wechat", "menu")
        assert code == 1 and "40018" in err


async def test_a_bad_menu_in_the_config_names_the_key(tmp_path):
    async with FakeWeChatAPI(APPID, SECRET) as api:
        cfg = write_config(tmp_path, api, menu=[{"name": "商品", "action": "rm -rf"}])
        code, _, err = await run(cfg, "wechat", "menu")
        assert code == 2 and "wechat.menu[0].action" in err
        assert api.menus == []


async def test_the_store_process_serves_the_wechat_callback(tmp_path):
    async with FakeWeChatAPI(APPID, SECRET) as api:
        port = free_port()
        cfg = write_config(tmp_path, api, port=port)
        proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "run.py"), "--config", str(cfg),
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                    env={"WX_SECRET": SECRET, "PATH": "/usr/bin:/bin"})
        try:
            async with WeChatServer(f"http://127.0.0.1:{port}/wechat", TOKEN, APPID) as wx:
                for _ in range(200):  # wait for the server to listen
                    try:
                        status, echoed = await wx.verify("ready")
                        break
                    except OSError:
                        await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the store did not start listening")
                assert (status, echoed) == (200, "ready")
                assert "欢迎光临" in await wx.text("o-ann", "你好")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()


async def test_a_missing_wechat_pay_certificate_stops_the_store_with_the_key_named(tmp_path):
    async with FakeWeChatAPI(APPID, SECRET) as api:
        cfg = write_config(tmp_path, api, port=free_port(), pay={
            "mch_id": "1900000109", "api_key": "k" * 32, "notify_url": "https://shop.example.com/wechat/pay/notify",
            "cert": str(tmp_path / "missing-cert.pem"), "key": str(tmp_path / "missing-key.pem")})
        code, out, err = await run(cfg)
        assert code == 2, err
        assert "wechat.pay.cert" in err and "file not found" in err and "Traceback" not in err


async def test_the_store_process_serves_supplier_callbacks_and_refuses_a_bad_signature(tmp_path):
    supplier = await FakeSupplier().start()
    try:
        async with FakeWeChatAPI(APPID, SECRET) as api:
            port = free_port()
            callback = f"http://127.0.0.1:{port}/supplier/up/callback"
            cfg = write_config(tmp_path, api, port=port)
            data = yaml.safe_load(cfg.read_text())
            data["suppliers"] = {"up": supplier.config(callback_url=callback)}
            cfg.write_text(yaml.safe_dump(data, allow_unicode=True))
            proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "run.py"), "--config", str(cfg),
                                                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                        env={"WX_SECRET": SECRET, "PATH": "/usr/bin:/bin"})
            try:
                forged = {"app_key": supplier.app_key, "request_id": "T-nothing", "status": "success",
                          "timestamp": "1764000000", "nonce": "n1", "sign": "0" * 32}
                async with aiohttp.ClientSession() as http:
                    for _ in range(200):  # wait for the server to listen
                        try:
                            async with http.post(callback, data=forged) as r:
                                status = r.status
                            break
                        except aiohttp.ClientConnectionError:
                            await asyncio.sleep(0.05)
                    else:
                        raise AssertionError("the store did not start listening")
                assert status == 403  # served, checked, refused
            finally:
                proc.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err.decode()
    finally:
        await supplier.stop()
