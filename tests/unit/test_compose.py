"""Static checks of the Docker deployment against the code.

docker-compose.yml, the Dockerfile, .dockerignore and the Prometheus and Grafana files are checked
against what the workspace declares: console scripts, settings fields, ports, workspace members.
None of this needs Docker; the one test that asks ``docker compose`` to validate the file is skipped
when no Docker engine answers.
"""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus-compose.yml"
GRAFANA_DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_DASHBOARD_PROVIDERS = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"

APP_IMAGE = "cte-exchange:local"
# The settings classes of the workspace: (module, class).
SETTINGS_CLASSES = (
    ("cte_common.settings", "CommonSettings"),
    ("ingest_api.settings", "Settings"),
    ("rule_engine.settings", "Settings"),
    ("netskope_sink.settings", "Settings"),
    ("ager.settings", "Settings"),
)
# Services the stack cannot do without.
REQUIRED_APP_SERVICES = {"migrate", "topics", "ingest-api", "rule-engine", "netskope-sink", "ager"}
# Serves /metrics on its API port rather than on a *_METRICS_PORT.
API_SERVICE = "ingest-api"
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}
_INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
_URL_PORT = re.compile(r"https?://(?P<host>[A-Za-z0-9_.-]+):(?P<port>\d+)")


# ---------------------------------------------------------------------------- loading


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@cache
def _compose() -> dict[str, Any]:
    data = _load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict), "docker-compose.yml: not a mapping"
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose().get("services")
    assert isinstance(services, dict), "docker-compose.yml: services is not a mapping"
    assert services, "docker-compose.yml: no services"
    return services


def _is_app(service: dict[str, Any]) -> bool:
    return service.get("image") == APP_IMAGE or "build" in service


def _app_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in _services().items() if _is_app(svc)}


def _interpolate(value: str) -> str:
    """The value compose would use with nothing set in the environment: defaults filled in."""

    def repl(m: re.Match[str]) -> str:
        return m.group("arg") if m.group("op") in (":-", "-") else ""

    return _INTERPOLATION.sub(repl, value).replace("$$", "$")


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (str(item).partition("=") for item in env)
        return {k: _interpolate(v) if sep else None for k, sep, v in pairs}
    return {k: None if v is None else _interpolate(str(v)) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if isinstance(command, str):
        return shlex.split(command)
    return [str(part) for part in command or []]


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _restarts_after_success(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) in ("always", "unless-stopped")


def _ports(service: dict[str, Any]) -> list[tuple[str | None, str | None, int]]:
    """(host ip, host port, container port) of every published port."""
    out: list[tuple[str | None, str | None, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            out.append((entry.get("host_ip"), None if published is None else str(published), int(entry["target"])))
            continue
        spec = _interpolate(str(entry)).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            out.append((parts[0], parts[1], int(parts[2])))
        elif len(parts) == 2:
            out.append((None, parts[0], int(parts[1])))
        else:
            out.append((None, None, int(parts[0])))
    return out


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of every bind mount; named volumes are left out."""
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            if entry.get("type") == "bind":
                out.append((str(entry["source"]), str(entry["target"])))
            continue
        source, _, rest = _interpolate(str(entry)).partition(":")
        if source.startswith((".", "/", "~")):
            out.append((source, rest.split(":", 1)[0]))
    return out


def _named_volumes(service: dict[str, Any]) -> list[str]:
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            if entry.get("type") == "volume" and entry.get("source"):
                out.append(str(entry["source"]))
            continue
        source, sep, _ = str(entry).partition(":")
        if sep and not source.startswith((".", "/", "~", "$")):
            out.append(source)
    return out


@cache
def _workspace_members() -> tuple[Path, ...]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    workspace = root["tool"]["uv"]["workspace"]
    excluded = {p.resolve() for pattern in workspace.get("exclude", []) for p in ROOT.glob(pattern)}
    members = {
        path.resolve()
        for pattern in workspace["members"]
        for path in ROOT.glob(pattern)
        if (path / "pyproject.toml").is_file()
    }
    return tuple(sorted(members - excluded))


@cache
def _console_scripts() -> dict[str, str]:
    """Console script name -> entry point, from every workspace member's [project.scripts]."""
    scripts: dict[str, str] = {}
    for member in _workspace_members():
        project = tomllib.loads((member / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        scripts.update(project.get("scripts", {}))
    return scripts


def _env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix") or "")
    return {(prefix + name).upper() for name in cls.model_fields}


def _import_settings(module: str, name: str) -> type[BaseSettings]:
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type), f"{module}.{name}: not a class"
    assert issubclass(cls, BaseSettings), f"{module}.{name}: not a settings class"
    return cls


@cache
def _all_setting_names() -> frozenset[str]:
    names: set[str] = set()
    for module, cls_name in SETTINGS_CLASSES:
        names |= _env_names(_import_settings(module, cls_name))
    for script in _console_scripts():
        cls = _settings_of_script(script)
        if cls is not None:
            names |= _env_names(cls)
    return frozenset(names)


def _settings_of_script(script: str) -> type[BaseSettings] | None:
    """The settings class a console script reads: ``Settings`` (or ``CommonSettings``) in
    ``<its top-level package>.settings``; None when there is no such module."""
    package = _console_scripts()[script].split(":", 1)[0].split(".", 1)[0]
    try:
        module = importlib.import_module(f"{package}.settings")
    except ModuleNotFoundError:
        return None
    for name in ("Settings", "CommonSettings"):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseSettings):
            return cls
    return None


def _service_setting_names(service: dict[str, Any]) -> frozenset[str]:
    """The variables the service's own command reads (all known ones when that is unknown)."""
    command = _command(service)
    cls = _settings_of_script(command[0]) if command and command[0] in _console_scripts() else None
    return frozenset(_env_names(cls)) if cls is not None else _all_setting_names()


def _configured_port(name: str, service: dict[str, Any]) -> tuple[str, int] | None:
    """The (variable, port) the service's environment sets for its listener, if any."""
    env = _environment(service)
    own = _service_setting_names(service)
    port_vars = sorted(k for k in env if k.endswith("_PORT") and k in own)
    if not port_vars:
        return None
    assert len(port_vars) == 1, f"{name}: sets several ports {port_vars}; the checks expect one"
    value = env[port_vars[0]]
    assert value is not None, f"{name}: {port_vars[0]} has no value"
    assert value.isdigit(), f"{name}: {port_vars[0]}={value!r} is not a literal port"
    return port_vars[0], int(value)


def _host_var(port_var: str, own: frozenset[str]) -> str | None:
    candidates = [port_var.removesuffix("_PORT") + "_HOST"]
    if port_var.endswith("_METRICS_PORT"):
        candidates.append("CTE_METRICS_HOST")
    return next((c for c in candidates if c in own), None)


def _image_pin_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"{image}: no tag (means latest)"
    tag = last.rsplit(":", 1)[1]
    if tag == "latest" or not tag or "$" in tag:
        return f"{image}: tag {tag!r} is not a pin"
    return None


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _dockerignore_matcher() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (is-exception, regex), with Docker's pattern syntax."""
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(regex)))
    return rules


def _in_build_context(path: str) -> bool:
    """Whether Docker sends ``path`` (relative to the repo) to the builder: last matching rule wins,
    and a rule that matches a parent folder matches everything under it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in _dockerignore_matcher():
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = not negate
    return not excluded


# ---------------------------------------------------------------------------- compose file


def test_compose_file_parses() -> None:
    data = _compose()
    assert "version" not in data, "the Compose Specification has no version: key"
    assert set(_app_services()) >= REQUIRED_APP_SERVICES, "an application service is missing"
    for path in (PROMETHEUS_FILE, GRAFANA_DATASOURCES, GRAFANA_DASHBOARD_PROVIDERS):
        assert isinstance(_load_yaml(path), dict), f"{path.relative_to(ROOT)}: not a mapping"


def test_depends_on_names_defined_services() -> None:
    services = _services()
    problems = []
    for name, svc in services.items():
        for dep, condition in _depends_on(svc).items():
            if dep not in services:
                problems.append(f"{name}: depends on undefined service {dep!r}")
                continue
            if condition not in DEPENDS_ON_CONDITIONS:
                problems.append(f"{name}: unknown condition {condition!r} on {dep}")
            if condition == "service_healthy" and "healthcheck" not in services[dep]:
                problems.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
            if condition == "service_completed_successfully" and _restarts_after_success(services[dep]):
                problems.append(f"{name}: waits for {dep} to complete, but {dep} restarts when it exits")
    assert not problems, "\n".join(problems)


def test_app_services_share_one_image() -> None:
    problems = []
    for name, svc in _app_services().items():
        if svc.get("image") != APP_IMAGE or svc.get("build") not in (".", {"context": "."}):
            problems.append(f"{name}: expected build . and image {APP_IMAGE}")
    assert not problems, "\n".join(problems)


def test_app_commands_are_console_scripts() -> None:
    scripts = _console_scripts()
    problems = []
    for name, svc in _app_services().items():
        command = _command(svc)
        if not command:
            problems.append(f"{name}: no command")
        elif command[0] not in scripts:
            problems.append(f"{name}: {command[0]!r} is not a [project.scripts] entry of a workspace member")
    assert not problems, "\n".join(problems) + f"\nknown: {sorted(scripts)}"


def test_app_env_vars_are_settings_fields() -> None:
    known = _all_setting_names()
    problems = [
        f"{name}: {var} is not a field of any settings class"
        for name, svc in _app_services().items()
        for var in _environment(svc)
        if var.startswith("CTE_") and var not in known
    ]
    assert not problems, "\n".join(problems)


def test_app_env_vars_belong_to_the_services_own_settings() -> None:
    problems = []
    for name, svc in _app_services().items():
        own = _service_setting_names(svc)
        problems += [
            f"{name}: {var} is not read by {_command(svc)[0]}"
            for var in _environment(svc)
            if var.startswith("CTE_") and var not in own
        ]
    assert not problems, "\n".join(problems)


def test_bind_mounted_host_paths_exist() -> None:
    problems = []
    for name, svc in _services().items():
        for source, _target in _bind_mounts(svc):
            host = (ROOT / source).resolve()
            if not host.exists():
                problems.append(f"{name}: bind mount source {source} does not exist")
            elif not host.is_relative_to(ROOT):
                problems.append(f"{name}: bind mount source {source} is outside the repository")
    assert not problems, "\n".join(problems)


def test_named_volumes_are_declared() -> None:
    declared = set(_compose().get("volumes") or {})
    problems = [
        f"{name}: volume {vol} is not declared under volumes:"
        for name, svc in _services().items()
        for vol in _named_volumes(svc)
        if vol not in declared
    ]
    assert not problems, "\n".join(problems)


def test_published_ports_bind_loopback_only() -> None:
    problems = []
    for name, svc in _services().items():
        for host_ip, host_port, container_port in _ports(svc):
            if host_ip != "127.0.0.1" or not host_port:
                problems.append(f"{name}: port {container_port} published on {host_ip or 'every address'}")
    assert not problems, "\n".join(problems)


def test_ports_match_the_configured_ones() -> None:
    problems = []
    for name, svc in _app_services().items():
        configured = _configured_port(name, svc)
        published = {container for _, _, container in _ports(svc)}
        checked = {int(m.group("port")) for m in _URL_PORT.finditer(_healthcheck_text(svc))}
        if configured is None:
            if published or checked:
                problems.append(f"{name}: publishes or checks a port but sets no *_PORT setting")
            continue
        var, port = configured
        if published != {port}:
            problems.append(f"{name}: publishes container ports {sorted(published)}, {var} is {port}")
        if checked != {port}:
            problems.append(f"{name}: health-checks ports {sorted(checked)}, {var} is {port}")
        # Reachable from outside the container only when bound to every interface.
        env = _environment(svc)
        host_var = _host_var(var, _service_setting_names(svc))
        if host_var is None or env.get(host_var) != "0.0.0.0":  # noqa: S104 (containers)
            problems.append(f"{name}: {host_var or 'its host setting'} must be 0.0.0.0 for {var}")
    assert not problems, "\n".join(problems)


def test_long_running_app_services_have_healthchecks() -> None:
    problems = [
        f"{name}: no healthcheck"
        for name, svc in _app_services().items()
        if svc.get("restart") == "unless-stopped" and not _URL_PORT.search(_healthcheck_text(svc))
    ]
    assert not problems, "\n".join(problems)


def test_app_services_reach_the_compose_kafka_and_postgres() -> None:
    services = _services()
    postgres_env = _environment(services["postgres"])
    kafka_env = _environment(services["kafka"])
    advertised = kafka_env.get("KAFKA_ADVERTISED_LISTENERS") or ""
    problems = []
    for name, svc in _app_services().items():
        env = _environment(svc)
        bootstrap = env.get("CTE_KAFKA_BOOTSTRAP")
        if bootstrap is not None and f"://{bootstrap}" not in advertised:
            problems.append(f"{name}: CTE_KAFKA_BOOTSTRAP={bootstrap} is not among {advertised}")
        url = env.get("CTE_DATABASE_URL")
        if url is not None:
            parts = urlsplit(url)
            if parts.hostname not in services or parts.port != 5432:
                problems.append(f"{name}: CTE_DATABASE_URL does not point at a compose service on 5432")
            if parts.path.lstrip("/") != postgres_env.get("POSTGRES_DB"):
                problems.append(f"{name}: CTE_DATABASE_URL names another database than POSTGRES_DB")
            if parts.username != postgres_env.get("POSTGRES_USER"):
                problems.append(f"{name}: CTE_DATABASE_URL names another user than POSTGRES_USER")
            if parts.password != postgres_env.get("POSTGRES_PASSWORD"):
                problems.append(f"{name}: CTE_DATABASE_URL's password default differs from POSTGRES_PASSWORD's")
    assert not problems, "\n".join(problems)


def _postgres_settings() -> dict[str, str]:
    """The -c name=value settings of the postgres service's command, defaults interpolated."""
    command = _command(_services()["postgres"])
    assert command[:1] == ["postgres"], "postgres: the command must start the server (postgres -c ...)"
    pairs = [_interpolate(arg).partition("=") for flag, arg in pairwise(command) if flag == "-c"]
    return {name: value for name, _, value in pairs}


def test_postgres_is_sized_for_the_read_model_and_stays_durable() -> None:
    settings = _postgres_settings()
    problems = [
        f"postgres: {name} is not set"
        for name in ("shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression")
        if name not in settings
    ]
    problems += [
        f"postgres: {name}={settings[name]} gives up durability"
        for name in ("fsync", "synchronous_commit", "full_page_writes")
        if name in settings and settings[name].lower() in ("off", "false", "0", "local")
    ]
    assert not problems, "\n".join(problems)


def test_postgres_settings_are_documented_in_the_env_example() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    variables = {m["name"] for m in _INTERPOLATION.finditer(" ".join(_command(_services()["postgres"])))}
    missing = sorted(v for v in variables if not re.search(rf"^#? ?{v}=", example, re.MULTILINE))
    assert variables, "postgres: no setting can be overridden from .env"
    assert not missing, f".env.example does not document {', '.join(missing)}"


def test_image_tags_are_pinned() -> None:
    problems = [
        f"docker-compose.yml {name}: {problem}"
        for name, svc in _services().items()
        if "image" in svc and (problem := _image_pin_problem(str(svc["image"])))
    ]
    stages: set[str] = set()
    for keyword, args in _dockerfile_instructions():
        if keyword != "FROM":
            continue
        words = [w for w in args.split() if not w.startswith("--")]
        image = words[0]
        if image not in stages and (problem := _image_pin_problem(image)):
            problems.append(f"Dockerfile: {problem}")
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.add(words[2])
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------- Dockerfile


def test_dockerfile_installs_the_locked_workspace() -> None:
    assert DOCKERFILE.is_file(), "Dockerfile is missing"
    instructions = _dockerfile_instructions()
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    syncs = [cmd for args in runs for cmd in re.split(r"&&|;", args) if re.search(r"\buv\s+sync\b", cmd)]
    assert syncs, "Dockerfile: no uv sync"
    for cmd in syncs:
        assert "--frozen" in cmd.split(), f"Dockerfile: uv sync without --frozen: {cmd.strip()}"
    assert any({"--all-packages", "--no-dev"} <= set(cmd.split()) for cmd in syncs), (
        "Dockerfile: no uv sync --all-packages --no-dev"
    )
    assert any(re.search(r"pip install .*\buv==(\d+\.\d+\.\d+|\$\{?UV_VERSION\}?)", r) for r in runs), (
        "Dockerfile: uv is not installed with a pinned version"
    )
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    if "UV_VERSION" in args:
        assert re.fullmatch(r"\d+\.\d+\.\d+", args["UV_VERSION"]), "Dockerfile: UV_VERSION is not a version"


def test_dockerfile_copies_every_member_before_syncing() -> None:
    copied = {
        src
        for keyword, args in _dockerfile_instructions()
        if keyword == "COPY" and "--from" not in args
        for src in args.split()[:-1]
    }
    problems = [
        f"Dockerfile: {rel} is not copied for the dependency layer"
        for rel in ["pyproject.toml", "uv.lock"]
        + [str((m / "pyproject.toml").relative_to(ROOT)) for m in _workspace_members()]
        if rel not in copied
    ]
    assert not problems, "\n".join(problems)


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [args.split(":", 1)[0] for keyword, args in _dockerfile_instructions() if keyword == "USER"]
    assert users, "Dockerfile: no USER"
    assert users[-1] not in ("root", "0"), "Dockerfile: the final stage runs as root"


def test_dockerignore_keeps_local_state_out_and_sources_in() -> None:
    leaves_out = [
        ".git/HEAD",
        ".venv/bin/python",
        ".stack/logs/kafka.log",
        ".env",
        ".env.example",
        "services/ager/.env",
        "tests/unit/test_compose.py",
        ".pytest_cache/v/cache/nodeids",
        "libs/common/src/cte_common/__pycache__/settings.cpython-311.pyc",
    ]
    lets_in = ["pyproject.toml", "uv.lock"]
    for member in _workspace_members():
        lets_in.append(str((member / "pyproject.toml").relative_to(ROOT)))
        lets_in += [str(p.relative_to(ROOT)) for p in sorted(member.glob("src/*/*.py"))[:1]]
    lets_in += [
        str(p.relative_to(ROOT))
        for p in (ROOT / "libs" / "common" / "src" / "cte_common" / "migrations").rglob("*.py")
        if "__pycache__" not in p.parts
    ]
    problems = [f".dockerignore lets in {p}" for p in leaves_out if _in_build_context(p)]
    problems += [f".dockerignore leaves out {p}" for p in lets_in if not _in_build_context(p)]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------- Prometheus, Grafana


def _scrape_targets() -> list[tuple[str, str, int, dict[str, Any]]]:
    """(job, host, port, labels) of every static target of the compose Prometheus."""
    config = _load_yaml(PROMETHEUS_FILE)
    out = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = str(target).rpartition(":")
                out.append((job["job_name"], host, int(port), static.get("labels") or {}))
    return out


def test_prometheus_scrapes_compose_services_on_their_ports() -> None:
    config = _load_yaml(PROMETHEUS_FILE)
    assert config["global"]["scrape_interval"] == "5s"
    services = _services()
    problems = []
    for job, host, port, labels in _scrape_targets():
        if host not in services:
            problems.append(f"job {job}: {host} is not a compose service")
            continue
        svc = services[host]
        configured = _configured_port(host, svc) if _is_app(svc) else None
        expected = {configured[1]} if configured else {c for _, _, c in _ports(svc)}
        if port not in expected:
            problems.append(f"job {job}: {host}:{port}, but {host} listens on {sorted(expected)}")
        if labels.get("service") != host:
            problems.append(f"job {job}: label service={labels.get('service')!r}, expected {host!r}")
    scraped = {host for _, host, _, _ in _scrape_targets()}
    for name, svc in _app_services().items():
        configured = _configured_port(name, svc)
        serves_metrics = name == API_SERVICE or (configured and configured[0].endswith("_METRICS_PORT"))
        if serves_metrics and name not in scraped:
            problems.append(f"{name}: serves /metrics but Prometheus does not scrape it")
    assert not problems, "\n".join(problems)


def test_prometheus_config_is_mounted_where_the_command_reads_it() -> None:
    prometheus = _services()["prometheus"]
    flags = dict(arg.split("=", 1) for arg in _command(prometheus) if arg.startswith("--") and "=" in arg)
    config_path = flags.get("--config.file", "/etc/prometheus/prometheus.yml")
    visible = set()
    for source, target in _bind_mounts(prometheus):
        host = (ROOT / source).resolve()
        if host.is_file():
            visible.add((target, host))
        else:
            visible |= {(f"{target}/{p.relative_to(host)}", p) for p in host.rglob("*") if p.is_file()}
    assert (config_path, PROMETHEUS_FILE.resolve()) in visible, (
        f"{config_path} in the container is not deploy/prometheus/prometheus-compose.yml"
    )


def test_grafana_provisioning_matches_the_compose_services() -> None:
    services = _services()
    grafana = services["grafana"]
    (datasource,) = _load_yaml(GRAFANA_DATASOURCES)["datasources"]
    assert datasource["uid"] == "prometheus"
    assert datasource["type"] == "prometheus"
    assert datasource["isDefault"] is True
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus"
    assert url.port in {c for _, _, c in _ports(services["prometheus"])}

    mounts = {target: (ROOT / source).resolve() for source, target in _bind_mounts(grafana)}
    assert mounts.get("/etc/grafana/provisioning") == GRAFANA_DATASOURCES.parent.parent
    (provider,) = _load_yaml(GRAFANA_DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    dashboards = provider["options"]["path"]
    assert mounts.get(dashboards) == (ROOT / "deploy" / "grafana" / "dashboards").resolve(), (
        f"{dashboards} is not where deploy/grafana/dashboards is mounted"
    )
    env = _environment(grafana)
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED") == "false"
    assert env.get("GF_SECURITY_ADMIN_PASSWORD"), "Grafana admin password has no default"
