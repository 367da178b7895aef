"""The files shipped in deploy/ say what they must (the user, the port, the proxy headers), agree
with each other, and the deployment guide (docs/deploy.md) shows only `trackly` commands and
options that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from trackly_cli.cli import app

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
GUIDE = REPO / "docs" / "deploy.md"
SHIPPED = ("trackly.service", "Caddyfile", "nginx.conf", "logrotate", "backup.cron")
DATABASE = "/var/lib/trackly/trackly.db"

ROOT = typer.main.get_command(app)
SHELL_OPERATORS = {"&&", "||", "|", ";", "&"}
HELP = {"--help", "-h"}


def read(name: str) -> str:
    return (DEPLOY / name).read_text(encoding="utf-8")


def active_lines(text: str) -> list[str]:
    """Stripped lines that are neither blank nor comments (# …)."""
    return [s for s in (line.strip() for line in text.splitlines()) if s and s[0] != "#"]


def unit_settings(text: str) -> dict[tuple[str, str], list[str]]:
    """A systemd unit as {(section, key): [values, in order]} (comments left out)."""
    settings: dict[tuple[str, str], list[str]] = {}
    section = ""
    for line in active_lines(text):
        if line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        settings.setdefault((section, key.strip()), []).append(value.strip())
    return settings


def unit_value(settings: dict, section: str, key: str) -> str:
    values = settings.get((section, key))
    assert values, f"deploy/trackly.service sets no {key}= in [{section}]"
    return values[-1]


@pytest.fixture(scope="module")
def unit() -> dict[tuple[str, str], list[str]]:
    return unit_settings(read("trackly.service"))


@pytest.fixture(scope="module")
def exec_start(unit) -> list[str]:
    return shlex.split(unit_value(unit, "Service", "ExecStart"))


@pytest.fixture(scope="module")
def serve_params(exec_start) -> dict:
    """The unit's `trackly serve` options as the real command parses them (types and ranges
    checked by click)."""
    assert exec_start[0].endswith("/bin/trackly"), exec_start
    assert exec_start[1] == "serve", exec_start
    serve = ROOT.commands["serve"]
    with serve.make_context("serve", list(exec_start[2:])) as ctx:
        return dict(ctx.params)


def cron_jobs(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """An /etc/cron.d file: its NAME=value lines, and its jobs as (schedule, user, command)."""
    env: dict[str, str] = {}
    jobs = []
    for line in active_lines(text):
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
            continue
        fields = line.split(None, 6)
        assert len(fields) == 7, f"not a /etc/cron.d job line (schedule, user, command): {line}"
        jobs.append((" ".join(fields[:5]), fields[5], fields[6]))
    return env, jobs


# -- the trackly command lines in a text ------------------------------------------------------


def command_lines(markdown: str) -> list[str]:
    """The `trackly …` command lines of a Markdown text: lines of fenced code blocks (joined
    across trailing backslashes) and inline code spans, that start with `trackly ` or contain
    `/bin/trackly `."""
    found: list[str] = []
    fenced = False
    pending = ""
    for raw in markdown.splitlines():
        stripped = raw.strip()
        if stripped.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            candidates = [pending + stripped]
            pending = ""
        else:
            candidates = re.findall(r"`([^`\n]+)`", raw)
        found += [c for c in candidates if c.startswith("trackly ") or "/bin/trackly " in c]
    return found


def invocations(line: str) -> list[list[str]]:
    """The argument lists (after the program name) of every trackly run in a shell line."""
    # A command substitution such as $(date +%F) is one word of the command it is part of.
    tokens = shlex.split(re.sub(r"\$\([^()]*\)", "SUBST", line), comments=True)
    segments: list[list[str]] = [[]]
    for token in tokens:
        if token in SHELL_OPERATORS:
            segments.append([])
        else:
            segments[-1].append(token)
    runs = []
    for segment in segments:
        program = next(
            (i for i, t in enumerate(segment) if t.endswith("/bin/trackly")),
            0 if segment[:1] == ["trackly"] else None,
        )
        if program is None:
            continue
        args = []
        for token in segment[program + 1 :]:
            if token[:1] in "<>" or token[:2] in ("1>", "2>"):
                break  # a redirection: the command's own arguments ended
            args.append(token)
        runs.append(args)
    return runs


def _option(command, name: str):
    """The option of a click command (Typer's vendored click) called `name`, or None."""
    for param in command.params:
        if param.param_type_name == "option" and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def resolve(args: list[str]) -> tuple[list[str], list[str]]:
    """Walk the real command tree along `args`: (the subcommand path, problems found). The path
    ends at the first token that is an argument rather than a subcommand; every option must
    belong to the command it follows."""
    command = ROOT
    path: list[str] = []
    problems: list[str] = []
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        if token.startswith("-") and token != "-":
            name, has_value, _ = token.partition("=")
            if name in HELP:
                continue
            option = _option(command, name)
            if option is None:
                problems.append(f"trackly {' '.join(path)}: no option {name}")
            elif not option.is_flag and not option.count and not has_value:
                index += 1  # its value
            continue
        if hasattr(command, "commands"):  # a group
            sub = command.commands.get(token)
            if sub is None:
                if re.fullmatch(r"[a-z][a-z-]*", token):
                    problems.append(f"trackly {' '.join([*path, token])}: no such command")
                break  # a placeholder such as "$@" or "…"
            path.append(token)
            command = sub
        # else: an argument of a command; its options may follow
    return path, problems


# -- the systemd unit -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_the_deploy_files_are_shipped(name):
    assert (DEPLOY / name).is_file()
    assert read(name).strip()


def test_the_unit_runs_trackly_serve_as_the_trackly_user(unit, exec_start):
    assert exec_start[0] == "/opt/trackly/venv/bin/trackly"
    assert exec_start[1] == "serve"
    assert unit_value(unit, "Service", "User") == "trackly"
    assert unit_value(unit, "Service", "Group") == "trackly"
    environment = " ".join(unit.get(("Service", "Environment"), []))
    assert f"TRACKLY_DB={DATABASE}" in environment.split()


def test_the_unit_restarts_and_stops_cleanly(unit):
    assert unit_value(unit, "Service", "Restart") == "on-failure"
    assert unit_value(unit, "Service", "KillSignal") == "SIGTERM"
    assert unit_value(unit, "Service", "TimeoutStopSec")
    assert unit_value(unit, "Install", "WantedBy") == "multi-user.target"


def test_the_unit_is_sandboxed_but_may_write_its_database(unit):
    assert unit_value(unit, "Service", "NoNewPrivileges") == "yes"
    assert unit_value(unit, "Service", "ProtectSystem") == "strict"
    assert unit_value(unit, "Service", "ProtectHome") == "yes"
    assert unit_value(unit, "Service", "PrivateTmp") == "yes"
    assert unit_value(unit, "Service", "StateDirectory") == "trackly"
    writable = unit_value(unit, "Service", "ReadWritePaths").split()
    assert str(Path(DATABASE).parent) in writable


def test_the_unit_serves_on_loopback_behind_a_trusted_proxy(serve_params):
    assert serve_params["host"] == "127.0.0.1"
    assert serve_params["port"] == 8080
    assert serve_params["trusted_proxy"] == "127.0.0.1"
    assert serve_params["access_log"] is True


def test_the_units_serve_options_exist(exec_start):
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    used = [t.split("=", 1)[0] for t in exec_start[2:] if t.startswith("--")]
    assert used, exec_start
    for option in used:
        assert option in result.output, f"`trackly serve --help` does not list {option}"
        assert _option(ROOT.commands["serve"], option) is not None


# -- the proxies ------------------------------------------------------------------------------


def caddy_upstreams() -> list[str]:
    return [
        line.split()[1]
        for line in active_lines(read("Caddyfile"))
        if line.startswith("reverse_proxy ")
    ]


def nginx_upstreams() -> list[str]:
    return re.findall(
        r"^proxy_pass\s+http://([^/;\s]+)/?;$",
        "\n".join(active_lines(read("nginx.conf"))),
        flags=re.MULTILINE,
    )


def test_caddy_reverse_proxies_to_trackly():
    assert caddy_upstreams()
    assert set(caddy_upstreams()) == {"127.0.0.1:8080"}
    caddyfile = "\n".join(active_lines(read("Caddyfile")))
    # Caddy keeps the Host header by default: nothing may rewrite it.
    assert "header_up Host" not in caddyfile
    assert "header_up X-Forwarded-For" not in caddyfile


def test_caddy_never_asks_healthz_for_on_demand_certificates():
    for line in read("Caddyfile").splitlines():
        if re.match(r"^\s*#?\s*ask\s", line):
            assert "/healthz" not in line, line


def test_nginx_passes_host_client_address_and_scheme():
    lines = active_lines(read("nginx.conf"))
    assert "proxy_set_header Host $host;" in lines
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in lines
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in lines
    assert "proxy_pass http://127.0.0.1:8080;" in lines
    assert set(nginx_upstreams()) == {"127.0.0.1:8080"}


def test_nginx_serves_tls_and_redirects_plain_http_except_acme_challenges():
    lines = active_lines(read("nginx.conf"))
    assert any(re.match(r"listen 443 ssl\b", line) for line in lines)
    assert "listen 80;" in lines
    assert "location /.well-known/acme-challenge/ {" in lines
    assert "return 301 https://$host$request_uri;" in lines
    assert any(re.match(r"ssl_certificate\s+/etc/letsencrypt/live/", line) for line in lines)


def test_the_unit_the_caddyfile_and_nginx_agree_on_the_address(serve_params):
    address = f"{serve_params['host']}:{serve_params['port']}"
    assert set(caddy_upstreams()) == {address}
    assert set(nginx_upstreams()) == {address}
    # The proxies connect from loopback, the one address trackly trusts.
    assert serve_params["trusted_proxy"] == serve_params["host"] == "127.0.0.1"


# -- backups and logs -------------------------------------------------------------------------


def test_the_backup_cron_runs_db_backup_as_the_trackly_user(unit):
    env, jobs = cron_jobs(read("backup.cron"))
    assert env.get("TRACKLY_DB") == DATABASE
    assert f"TRACKLY_DB={DATABASE}" in unit.get(("Service", "Environment"), [])
    backups = [(user, cmd) for _, user, cmd in jobs if "/bin/trackly db backup " in cmd]
    assert backups, jobs
    for user, command in backups:
        assert user == "trackly"
        assert "--force" in command
        assert "db check" in command  # the copy is checked
    for _, user, command in jobs:
        assert user == "trackly"
        # cron turns an unescaped % into a newline
        assert not re.search(r"(?<!\\)%", command), command
    assert any("find /var/backups/trackly" in c and "-mtime +14" in c for _, _, c in jobs)


def test_the_backup_crons_trackly_commands_exist():
    _, jobs = cron_jobs(read("backup.cron"))
    paths = set()
    for _, _, command in jobs:
        for args in invocations(command.replace("\\%", "%")):
            path, problems = resolve(args)
            assert not problems, (command, problems)
            paths.add(" ".join(path))
    assert {"db backup", "db check"} <= paths


def test_logrotate_rotates_the_units_log_file():
    text = read("logrotate")
    lines = active_lines(text)
    assert any(re.fullmatch(r"rotate \d+", line) for line in lines)
    assert "compress" in lines
    assert "copytruncate" in lines
    assert "daily" in lines
    # The file it rotates is the one the unit's (optional) StandardError= line writes.
    targets = re.findall(r"^(/\S+) \{$", "\n".join(lines), flags=re.MULTILINE)
    unit_file = re.findall(r"StandardError=append:(\S+)", read("trackly.service"))
    assert targets
    assert unit_file
    assert set(targets) == set(unit_file)


# -- the guide --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def test_the_guide_mentions_every_file_in_deploy(guide):
    files = sorted(p.name for p in DEPLOY.iterdir() if p.is_file())
    assert set(SHIPPED) <= set(files)
    for name in files:
        assert f"deploy/{name}" in guide, f"docs/deploy.md does not mention deploy/{name}"


def test_the_guide_covers_the_operators_jobs(guide):
    for needle in (
        "--trusted-proxy",
        "REMOTE_ADDR",
        "trackly domain add go.newbrand.link --account newbrand",
        "trackly prune --dry-run",
        "trackly db check",
        "https://go.newbrand.link/healthz",
        "python3 -m venv /opt/trackly/venv",
        "## Troubleshooting",
    ):
        assert needle in guide, needle


def test_the_command_line_extraction_sees_what_it_must():
    text = (
        "Run `trackly db path` first.\n"
        "```sh\n"
        "sudo -u trackly /opt/trackly/venv/bin/trackly --db /x.db db check # the copy\n"
        "trackly shorten a.txt \\\n"
        '  --link link1="Summer Sale" --list customers\n'
        "```\n"
    )
    lines = command_lines(text)
    assert len(lines) == 3
    assert [resolve(args)[0] for line in lines for args in invocations(line)] == [
        ["db", "path"],
        ["db", "check"],
        ["shorten"],
    ]
    assert resolve(["db", "bakup", "x.db"])[1]
    assert resolve(["db", "backup", "x.db", "--overwrite"])[1]
    assert resolve(["--db", "/x.db", "prune", "--dry-run"]) == (["prune"], [])


def test_every_trackly_command_in_the_guide_exists(guide):
    lines = command_lines(guide)
    assert len(lines) >= 20, lines
    runner = CliRunner()
    paths: dict[tuple[str, ...], str] = {}
    for line in lines:
        runs = invocations(line)
        assert runs, line
        for args in runs:
            path, problems = resolve(args)
            assert not problems, f"{line}: {problems}"
            paths.setdefault(tuple(path), line)
    for path, line in paths.items():
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, f"{line}: `trackly {' '.join(path)} --help` failed"
    # the jobs the guide walks through
    for expected in (
        ("serve",),
        ("account", "create"),
        ("domain", "add"),
        ("offer", "create"),
        ("db", "backup"),
        ("db", "check"),
        ("db", "migrate"),
        ("prune",),
    ):
        assert expected in paths, expected
