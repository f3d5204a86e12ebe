"""The deployment files agree with the store and with each other. deploy/nginx.conf passes on every path the
store's HTTP server serves and no path it does not. Each process of deploy/store@.service and compose.yaml
listens on a port of nginx's upstream. compose.yaml and the Dockerfile run deploy/config.yaml and pass the
variables it reads, and that config loads with them. (Neither nginx, systemd nor Docker runs here. These are
the checks that can be made without them.)"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from app import App
from bots.b2b_api import mount_api
from bots.http import HttpServer, webhook_path
from bots.miniapp import mount_miniapp
from bots.ops import mount_ops
from bots.web import mount_console
from bots.wechat.h5 import mount_h5
from config.settings import Settings, parse_settings
from suppliers import mount_callbacks
from tests.dbtemplate import from_template

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
NGINX = (DEPLOY / "nginx.conf").read_text()
UNIT = (DEPLOY / "store@.service").read_text()
CONFIG = (DEPLOY / "config.yaml").read_text()
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")

# Every channel and feature on: what a store with everything configured serves.
EVERYTHING = {
    "STORE_PUBLIC_URL": "https://shop.example.com", "TELEGRAM_TOKEN": "123456:TEST-token",
    "TELEGRAM_WEBHOOK_SECRET": "webhook-secret", "WECHAT_APPID": "wx0123456789abcdef", "WECHAT_TOKEN": "token",
    "WECHAT_SECRET": "secret", "WECHAT_AES_KEY": "a" * 43, "WECHAT_PAY_MCH_ID": "1900000001",
    "WECHAT_PAY_API_KEY": "k" * 32, "REDIS_URL": ""}
SUPPLIER = {"type": "http", "base_url": "http://127.0.0.1:9", "app_key": "key", "secret": "secret",
            "callback_url": "https://shop.example.com/supplier/kaka/callback"}


def deploy_settings(env: dict[str, str], tmp_path: Path, **more: Any) -> Settings:
    data = yaml.safe_load(CONFIG)
    data["vault"]["key_file"] = str(tmp_path / "vault.key")
    data.update(more)
    return parse_settings(data, tmp_path, env=env)


# -- nginx: the paths --------------------------------------------------------------------------------------------

def _blocks(text: str) -> list[tuple[str, str]]:
    """(location head, its body) of the TLS server block, in order."""
    tls = text[text.index("listen 443"):]
    return [(m.group(1).strip(), m.group(2)) for m in re.finditer(r"location\s+([^{]+)\{([^}]*)\}", tls)]


def nginx_pick(path: str, blocks: list[tuple[str, str]]) -> tuple[str, str]:
    """The location nginx picks for `path`: an exact match; else the longest prefix, unless a regex (in order)
    matches."""
    for head, body in blocks:
        if head.startswith("= ") and head[2:].strip() == path:
            return head, body
    prefixes = [(head, body) for head, body in blocks if not head.startswith(("=", "~")) and path.startswith(head)]
    longest = max(prefixes, key=lambda hb: len(hb[0]), default=None)
    for head, body in blocks:
        if head.startswith("~ ") and re.search(head[2:].strip(), path):
            return head, body
    assert longest is not None, f"no location for {path}"
    return longest


def _routes(app: web.Application, prefix: str = "") -> list[str]:
    out = []
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            out += _routes(resource._app, prefix + resource.canonical)  # noqa: SLF001 - aiohttp has no getter
        else:
            out.append(prefix + resource.canonical)
    return out


def sample(route: str) -> str:
    """A concrete path the route serves: each {variable} filled in."""
    return re.sub(r"\{[^}]+\}", "x1", route)


async def served_routes(tmp_path: Path) -> tuple[list[str], Settings]:
    """The routes of a store with everything on, mounted as cli/run.py `serve` mounts them."""
    url = from_template(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    settings = deploy_settings({**EVERYTHING, "STORE_DATABASE_URL": url}, tmp_path,
                               suppliers={"kaka": SUPPLIER})
    settings.server.api = True
    async with await App.open(settings) as app:
        server = HttpServer("127.0.0.1", 0)
        runtime = app.add_telegram()
        wechat = app.add_wechat(server)
        tg = settings.telegram
        server.add_telegram(runtime, webhook_path(tg.webhook.url), tg.webhook.secret.get_secret_value())
        mount_ops(server, app, app.metrics)
        assert mount_callbacks(server, app.shop, settings)
        mount_api(server, app.resellers, settings)
        mount_console(server, app)
        mount_miniapp(server, app, runtime, hosts=[mount_h5(server, app, wechat)])
        return _routes(server.app), settings


async def test_nginx_passes_on_every_path_the_store_serves_and_only_those(tmp_path: Path) -> None:
    routes, settings = await served_routes(tmp_path)
    assert {"/wechat", "/wechat/pay/notify", "/healthz", "/metrics", "/h5/", "/console", "/app/"} <= set(routes)
    blocks = _blocks(NGINX)
    unreachable = [r for r in routes if "proxy_pass http://store" not in nginx_pick(sample(r), blocks)[1]]
    assert unreachable == [], "routes nginx answers 404 for"
    passing = [head for head, body in blocks if "proxy_pass" in body]
    dead = [head for head in passing if not any(nginx_pick(sample(r), blocks)[0] == head for r in routes)]
    assert dead == [], "locations that pass on paths the store does not serve"
    assert f"= {webhook_path(settings.telegram.webhook.url)}" in passing
    metrics = nginx_pick("/metrics", blocks)[1]
    assert "deny all;" in metrics and "allow 127.0.0.1;" in metrics
    assert nginx_pick("/.env", blocks)[1].strip() == "return 404;"


# -- ports: systemd, compose, nginx -------------------------------------------------------------------------------

def upstream(name: str) -> list[str]:
    body = re.search(r"upstream\s+" + name + r"\s*\{([^}]*)\}", NGINX)
    assert body is not None, name
    return re.findall(r"^\s*server\s+(\S+?);", body.group(1), re.M)


def test_each_process_listens_on_a_port_of_the_upstream_and_both_upstreams_have_them_all(tmp_path: Path) -> None:
    servers = upstream("store")
    assert len(servers) >= 2 and upstream("store_wechat") == servers
    port = re.search(r"^Environment=STORE_SERVER_PORT=(\S+)$", UNIT, re.M)
    assert port is not None
    # systemd: store@1 .. store@N, %i the instance
    assert [f"127.0.0.1:{port.group(1).replace('%i', str(n))}" for n in range(1, len(servers) + 1)] == servers
    for n in range(1, len(servers) + 1):
        env = {"STORE_DATABASE_URL": "postgresql+asyncpg://shop@127.0.0.1/shop", "REDIS_URL": "redis://r:6379/0",
               "STORE_PUBLIC_URL": "https://shop.example.com", "STORE_SERVER_PORT": port.group(1).replace("%i", str(n))}
        settings = deploy_settings(env, tmp_path)
        assert f"{settings.server.host}:{settings.server.port}" == servers[n - 1]
    # compose: each store-N container publishes its server port on the upstream's address
    published = {}
    for name, service in COMPOSE["services"].items():
        if name.startswith("store-"):
            (mapping,) = service["ports"]
            address, host_port, inner = mapping.rsplit(":", 2)
            published[f"{address}:{host_port}"] = int(inner)
    assert sorted(published) == sorted(servers)
    inner_port = deploy_settings(compose_env(), tmp_path).server.port
    assert set(published.values()) == {inner_port}


# -- compose and the Dockerfile: the config and its variables -----------------------------------------------------

def compose_env() -> dict[str, str]:
    """The store containers' environment as compose hands it over (the .env values made up)."""
    envs = [s["environment"] for n, s in COMPOSE["services"].items() if n.startswith("store-")]
    assert len(envs) >= 2 and all(e == envs[0] for e in envs)
    values = {"POSTGRES_PASSWORD": "pw", "STORE_PUBLIC_URL": "https://shop.example.com"}
    return {k: re.sub(r"\$\{(\w+)(?::[-?][^}]*)?\}", lambda m: values.get(m.group(1), ""), str(v))
            for k, v in envs[0].items()}


def _strings(node: Any) -> str:
    """Every string value of a loaded YAML document, one a line (the comments are gone)."""
    if isinstance(node, dict):
        return "\n".join(_strings(v) for v in node.values())
    if isinstance(node, list):
        return "\n".join(_strings(v) for v in node)
    return str(node)


def test_compose_passes_the_variables_deploy_config_reads_and_it_loads_with_them(tmp_path: Path) -> None:
    read = {m.group(1): m.group(2) is None for m in VAR.finditer(_strings(yaml.safe_load(CONFIG)))}  # -> required
    env = compose_env()
    assert set(env) - set(read) == set(), "variables compose sets that deploy/config.yaml never reads"
    required = {name for name, needed in read.items() if needed}
    assert required - set(env) == set(), "variables deploy/config.yaml needs that compose does not set"
    settings = deploy_settings(env, tmp_path)
    assert settings.database_url_resolved().startswith("postgresql+asyncpg://shop:pw@postgres:5432/")
    assert settings.redis.url.get_secret_value() == "redis://redis:6379/0"
    assert settings.server.host == "0.0.0.0" and settings.telegram.mode == "webhook"


def test_the_image_holds_every_package_and_runs_the_config_compose_names() -> None:
    config = ["python", "run.py", "--config", "deploy/config.yaml"]
    assert COMPOSE["x-store"]["command"] == config
    assert f"CMD {str(config)}".replace("'", '"') in DOCKERFILE
    assert "COPY deploy/config.yaml deploy/config.yaml" in DOCKERFILE
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.findall(r'"(\w+)\*"', re.search(r"include = \[([^\]]*)\]", pyproject).group(1))
    assert packages and [p for p in packages if f"COPY {p} {p}" not in DOCKERFILE] == []


@pytest.mark.parametrize("command", ["ExecStartPre", "ExecStart"])
def test_the_unit_runs_the_store_with_its_config(command: str) -> None:
    line = re.search(rf"^{command}=(.*)$", UNIT, re.M)
    assert line is not None
    assert "run.py --config /srv/shop/config.yaml" in line.group(1)
    assert line.group(1).endswith("db upgrade") == (command == "ExecStartPre")
