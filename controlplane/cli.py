"""The `aiops` command line: serve the API, open the console, run the demo, migrate, tokens.

Errors that a user can fix (bad settings, store down, bad arguments) print one clear line to
stderr and exit with code 2; nothing is half-done.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy import make_url
from sqlalchemy.orm import Session

from controlplane import __version__
from controlplane.config import DatabaseSettings, Settings, load_settings
from controlplane.domain.errors import ControlPlaneError
from controlplane.domain.models import Role

app = typer.Typer(
    name="aiops",
    help="AIOps control plane: alerts and metrics in, incidents and safe, verified fixes out.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
token_app = typer.Typer(
    help="API tokens (roles: viewer, operator, admin, webhook).", no_args_is_help=True
)
bench_app = typer.Typer(help="Quality benchmarks.", no_args_is_help=True)
report_app = typer.Typer(
    help="Reports (stored with their history, served by the API).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(bench_app, name="bench")
app.add_typer(report_app, name="report")
policy_app = typer.Typer(help="Remediation policies: validate, backtest.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
rules_app = typer.Typer(help="Prometheus rules for anomalies, SLOs, capacity and health.")
slo_app = typer.Typer(help="Service level objectives.", no_args_is_help=True)
app.add_typer(slo_app, name="slo")
app.add_typer(rules_app, name="rules", no_args_is_help=True)

DetectorOption = Annotated[
    str, typer.Option("--detector", "-d", help="Detector name (see detectors.REGISTRY).")
]

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML settings file (environment AIOPS_* wins over it).",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]


DEMO_DIR = Path(".aiops-demo")
DEMO_STORE = DEMO_DIR / "aiops.db"
DEFAULT_DATABASE_URL = DatabaseSettings.model_fields["url"].default


class _State:
    config: Path | None = None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aiops {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    config: ConfigOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    _State.config = config


def settings() -> Settings:
    try:
        loaded = load_settings(_State.config)
    except ControlPlaneError as exc:
        fail(str(exc))
    logging.basicConfig(
        level=loaded.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Migrations say what they ran at INFO; on ordinary commands that is noise (only
    # `aiops db upgrade` reports them).
    logging.getLogger("alembic").setLevel(
        max(logging.getLevelNamesMapping()[loaded.log_level], logging.WARNING)
    )
    return loaded


def store_url(config: Settings, *, create: bool) -> str:
    """The store a command opens. Run beside a demo with `database.url` left at its default,
    that is the demo's store; a SQLite file that does not exist is created only by a command
    that writes (`create`), and said so; a read of a missing store fails, naming it."""
    url = config.database.url
    path = _sqlite_file(url)
    if path is None or path.exists():
        return url
    if url == DEFAULT_DATABASE_URL and DEMO_STORE.exists():
        typer.echo(f"using the demo's store {DEMO_STORE} (set database.url for another)", err=True)
        return f"sqlite:///{DEMO_STORE.resolve()}"
    if not create:
        fail(
            f"no store at {path} (database.url = {url!r}); create one with `aiops db upgrade`, "
            f"or point database.url (AIOPS_DATABASE__URL) at an existing store"
        )
    typer.echo(f"created a new store at {path} (database.url = {url!r})", err=True)
    return url


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other backends and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Override api.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override api.port.")] = None,
    loops: Annotated[
        bool | None,
        typer.Option(
            "--loops/--no-loops",
            help="Override api.run_loops: --no-loops serves the API only (run `aiops worker`).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="API processes sharing the port (each with its own store connections; "
            "use PostgreSQL for more than one).",
        ),
    ] = 1,
) -> None:
    """Run the API server (migrates the store first unless database.migrate_on_start=false)."""
    import uvicorn

    from controlplane.api import create_app
    from controlplane.api.server import serve_forked, uvicorn_config
    from controlplane.storage import upgrade

    config = settings()
    if loops is not None:
        config = config.model_copy(
            update={"api": config.api.model_copy(update={"run_loops": loops})}
        )
    address, number = host or config.api.host, port or config.api.port

    def build() -> uvicorn.Config:
        try:
            application = create_app(config)
        except ControlPlaneError as exc:
            fail(str(exc))
        return uvicorn_config(
            application, config.api, host=address, port=number, log_level=config.log_level.lower()
        )

    if workers == 1:
        uvicorn.Server(build()).run()
        return
    if config.database.migrate_on_start:  # once, before the processes start
        try:
            upgrade(config.database.url)
        except ControlPlaneError as exc:
            fail(str(exc))
        database = config.database.model_copy(update={"migrate_on_start": False})
        config = config.model_copy(update={"database": database})
    sys.exit(serve_forked(build, address, number, workers))


@app.command()
def worker() -> None:
    """Run detection, the policy runner and scheduled capacity reports without the API (for
    API replicas started with `aiops serve --no-loops`); SIGTERM or Ctrl-C stops it cleanly."""
    import asyncio
    import signal

    from controlplane.worker import run_worker

    config = settings()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(config, stop)

    try:
        asyncio.run(main())
    except ControlPlaneError as exc:
        fail(str(exc))


@app.command()
def mcp(
    transport: Annotated[
        str, typer.Option(help="'stdio' (a local agent) or 'http' (streamable HTTP).")
    ] = "stdio",
    host: Annotated[str, typer.Option(help="HTTP: the address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP: the port.")] = 8765,
) -> None:
    """An MCP server for AI agents: read incidents, signals, forecasts, decisions and audit;
    propose actions that a person approves. Over HTTP each request carries an API token (as
    `Authorization: Bearer`); over stdio the token is read from AIOPS_MCP_TOKEN."""
    import anyio
    import uvicorn

    from controlplane.api import mcp_server
    from controlplane.storage import Database

    config = settings()
    db = Database(config.database.url, pool_size=config.database.pool_size)
    try:
        if transport == "stdio":
            secret = os.environ.get("AIOPS_MCP_TOKEN", "")
            if not secret:
                fail("AIOPS_MCP_TOKEN: set it to an API token (viewer, operator or admin)")
            anyio.run(mcp_server.run_stdio, config, db, secret)
        elif transport == "http":
            url = f"http://{host}:{port}/mcp"
            app = mcp_server.http_app(config, db, url)
            typer.echo(f"MCP server on {url} (bearer tokens of the API)", err=True)
            uvicorn.run(app, host=host, port=port, log_level="warning")
        else:
            fail(f"--transport must be 'stdio' or 'http', got {transport!r}")
    except ControlPlaneError as exc:
        fail(str(exc))
    finally:
        db.dispose()


@app.command()
def console(
    port: Annotated[int | None, typer.Option(help="Override console.port.")] = None,
) -> None:
    """Run the Streamlit on-call console against the API (console.api_url)."""
    from controlplane.console import run_console

    config = settings()
    sys.exit(run_console(config, port=port or config.console.port))


@app.command()
def demo(
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its SQLite store.")
    ] = DEMO_DIR,
    api_port: Annotated[int, typer.Option(help="API port.")] = 8080,
    console_port: Annotated[int, typer.Option(help="Console port.")] = 8501,
    alertmanager_port: Annotated[int, typer.Option(help="Alertmanager port.")] = 9093,
    cycles: Annotated[
        int,
        typer.Option(
            help="How often the scenario plays (0: again and again); then the demo stays up, "
            "quiet, until Ctrl-C."
        ),
    ] = 1,
) -> None:
    """Start the API (SQLite), the console and a real Alertmanager, and play a scenario."""
    from controlplane.demo import run_demo

    try:
        run_demo(
            data_dir=data_dir,
            api_port=api_port,
            console_port=console_port,
            alertmanager_port=alertmanager_port,
            cycles=cycles,
        )
    except ControlPlaneError as exc:
        fail(str(exc))


@app.command()
def detect(
    input_file: Annotated[Path, typer.Option("--input", "-i", help="CSV/Parquet: timestamp,value")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV to write.")],
    detector: DetectorOption = "ensemble",
) -> None:
    """Score a series file: writes timestamp,value,anomaly_score (causal scores in [0, 1])."""
    from controlplane.detection.offline import DetectJob, detect_file

    try:
        rows = detect_file(DetectJob(input_file, output, detector))
    except ControlPlaneError as exc:
        fail(str(exc))
    typer.echo(f"{rows} rows scored with {detector} -> {output}")


@app.command()
def forecast(
    input_file: Annotated[Path, typer.Option("--input", "-i", help="CSV/Parquet: timestamp,value")],
    horizon: Annotated[int, typer.Option("--horizon", "-H", help="Steps to forecast.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV to write.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Forecaster name (see forecasters.REGISTRY).")
    ] = "auto",
) -> None:
    """Forecast a series file: writes timestamp,mean,lo-80,hi-80,lo-95,hi-95 for H steps."""
    from controlplane.capacity.offline import describe, forecast_file

    try:
        result = forecast_file(input_file, output, horizon, model)
    except ControlPlaneError as exc:
        fail(str(exc))
    typer.echo(f"{describe(result)} -> {output}")


@rules_app.command("export")
def rules_export(
    kind: Annotated[
        str,
        typer.Option(
            "--format", help="'prometheus' (a rule file) or 'kubernetes' (a PrometheusRule)."
        ),
    ] = "prometheus",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; default: stdout.")
    ] = None,
) -> None:
    """Recording and alerting rules from the settings: anomalies (anomaly_score, yhat),
    capacity crossings (predict_linear per capacity signal) and the control plane's health."""
    import yaml

    from controlplane import rules

    if kind not in ("prometheus", "kubernetes"):
        fail(f"--format must be 'prometheus' or 'kubernetes', got {kind!r}")
    config = settings()
    document = rules.rule_file(config) if kind == "prometheus" else rules.prometheus_rule(config)
    text = yaml.safe_dump(document, sort_keys=False, width=1000)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(
            f"{sum(len(g['rules']) for g in rules.rule_file(config)['groups'])} rules -> {output}"
        )


@slo_app.command("import")
def slo_import(
    files: Annotated[list[Path], typer.Argument(help="OpenSLO v1 YAML files.")],
) -> None:
    """Read OpenSLO v1 SLOs (openslo/v1 or openslo.com/v1; ratio or threshold indicators;
    rolling or calendar windows) and print them as the `slos:` section of the settings."""
    import yaml

    from controlplane import slos

    try:
        found = [slo for path in files for slo in slos.load_openslo(path)]
    except ControlPlaneError as exc:
        fail(str(exc))
    dumped = [s.model_dump(exclude_none=True) for s in found]
    typer.echo(yaml.safe_dump({"slos": dumped}, sort_keys=False, width=1000), nl=False)


@report_app.command("capacity")
def report_capacity(
    config: ConfigOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write report-<id>.{html,md,json} here."),
    ] = None,
) -> None:
    """Forecast every capacity signal now, store the report and raise capacity-risk incidents."""
    import json

    from rich.progress import Progress

    from controlplane.capacity.job import CapacityJob
    from controlplane.storage import Database, upgrade

    if config is not None:
        _State.config = config
    loaded = settings()
    if not loaded.capacity.signals:
        fail("capacity.signals is empty: configure the signals to forecast (see README)")
    url = store_url(loaded, create=True)
    db = Database(url)
    try:
        upgrade(url)
        job = CapacityJob(loaded, db)
        report_id = job.claim("cli", "cli")
        if report_id is None:  # only scheduled runs can collide
            fail("could not claim a report")
        steps = 2 * len(loaded.capacity.signals)
        with Progress() as progress:
            task = progress.add_task("capacity report", total=steps)
            report = job.produce(report_id, on_progress=lambda step: progress.advance(task))
        if report is None:
            fail(f"report {report_id} failed; see `GET /api/v1/reports/{report_id}`")
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
            document = {"report_id": report_id, **report.as_json()}
            (output / f"report-{report_id}.json").write_text(json.dumps(document, indent=2))
            (output / f"report-{report_id}.md").write_text(report.markdown())
            (output / f"report-{report_id}.html").write_text(report.html())
    except ControlPlaneError as exc:
        fail(str(exc))
    finally:
        db.dispose()
    failed = sum(o.error is not None for o in report.outlooks)
    typer.echo(
        f"report {report_id}: {len(report.outlooks)} signals, {len(report.at_risk)} at risk, "
        f"{failed} without a forecast" + (f" -> {output}" if output else "")
    )
    for outlook in report.outlooks:
        if outlook.error:
            typer.secho(
                f"  {outlook.signal.name}: {outlook.error}", err=True, fg=typer.colors.YELLOW
            )


PoliciesOption = Annotated[
    Path | None,
    typer.Option(
        "--policies", help="Folder of policy YAML files (default: automation.policies_dir)."
    ),
]


def _policy_folder(folder: Path | None, config: Settings) -> Path:
    chosen = folder or config.automation.policies_dir
    if chosen is None:
        fail("no policies: pass --policies DIR or set automation.policies_dir")
    return chosen


@policy_app.command("validate")
def policy_validate(policies: PoliciesOption = None) -> None:
    """Load and validate every policy file; errors name the file, policy, key and value."""
    from controlplane.policy import preflight
    from controlplane.policy.schema import load_policies

    config = settings()
    try:
        loaded = load_policies(_policy_folder(policies, config))
    except ControlPlaneError as exc:
        fail(str(exc))
    for policy in loaded:
        typer.echo(f"{policy.name:40} {policy.mode:9} {policy.action.type:20} {policy.version}")
    typer.echo(f"{len(loaded)} policies valid")
    for warning in preflight.without_data(config, loaded):
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)


@policy_app.command("backtest")
def policy_backtest(
    since: Annotated[
        datetime | None, typer.Option(help="Incidents opened at or after (UTC).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Incidents opened before (UTC).")] = None,
    policies: PoliciesOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
) -> None:
    """Replay stored incidents through the policies: what they would have done (no changes)."""
    import json

    from controlplane.policy.backtest import backtest
    from controlplane.policy.schema import load_policies

    config = settings()
    try:
        loaded = load_policies(_policy_folder(policies, config))
    except ControlPlaneError as exc:
        fail(str(exc))
    with _session(write=False) as session:
        result = backtest(
            session,
            loaded,
            since=_utc(since),
            until=_utc(until),
            global_max_per_hour=config.automation.max_actions_per_hour,
            cost=config.cost,
        )
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    summary = result.summary()
    typer.echo(f"{summary['incidents']} incidents, {summary['decisions']} decisions")
    for name, counts in summary["by_policy"].items():
        typer.echo(f"  {name:40} " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    refused = summary["refused_by_guardrail"]
    typer.echo("refused by: " + (", ".join(f"{k} {v}" for k, v in refused.items()) or "nothing"))
    rate = summary["actions_per_hour"]
    typer.echo(f"actions per hour: at most {rate['max']} (busiest {rate['busiest_hour']})")
    money = summary["cost"]["currency"]
    for name, cost in summary["cost"]["by_policy"].items():
        unpriced = f", {cost['unpriced']} unpriced" if cost["unpriced"] else ""
        typer.echo(
            f"  {name:40} would have spent {cost['spent']:.2f} {money} "
            f"(+{cost['added_per_hour']:.3f} {money}/h{unpriced})"
        )


def _utc(stamp: datetime | None) -> datetime | None:
    if stamp is None:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


@bench_app.command("nab")
def bench_nab(
    data: Annotated[Path, typer.Option(help="NAB corpus: data/<category>/<file>.csv.")],
    output: Annotated[Path, typer.Option(help="Results folder for nab_score.py.")],
    detector: DetectorOption = "ensemble",
    workers: Annotated[int, typer.Option(help="Processes (0 = one per core).")] = 0,
) -> None:
    """Score every NAB file with ONE detector configuration (labels are never read)."""
    from rich.progress import Progress

    from controlplane.detection.offline import nab_jobs, run_jobs

    try:
        jobs = nab_jobs(data, output, detector)
        with Progress(transient=False) as progress:
            task = progress.add_task(f"{detector} on {len(jobs)} files", total=len(jobs))
            rows = run_jobs(
                jobs, workers=workers or None, on_done=lambda job, n: progress.advance(task)
            )
    except ControlPlaneError as exc:
        fail(str(exc))
    typer.echo(f"{len(jobs)} files, {rows} rows scored with {detector} -> {output}")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the schema migrations to database.url."""
    from controlplane.storage import upgrade

    config = settings()
    logging.getLogger("alembic").setLevel(logging.INFO)
    url = store_url(config, create=True)
    try:
        upgrade(url, revision)
    except ControlPlaneError as exc:
        fail(str(exc))
    typer.echo(f"database {make_url(url).render_as_string()} at revision {revision}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="A unique name; recorded as the actor.")],
    role: Annotated[Role, typer.Option(help="What the token may do.")] = Role.VIEWER,
) -> None:
    """Create a token and print its secret (shown once)."""
    from controlplane import auth

    with _session() as session:
        try:
            _, secret = auth.create_token(session, name, role, actor="cli")
        except ValueError as exc:
            fail(str(exc))
    typer.echo(secret)


@token_app.command("list")
def token_list() -> None:
    """List tokens (never their secrets)."""
    from controlplane import auth

    with _session(write=False) as session:
        for row in auth.list_tokens(session):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            typer.echo(f"{row.name:32} {row.role:9} {state}")


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token (running API servers drop it within 5 s, their token cache's TTL)."""
    from controlplane import auth

    with _session() as session:
        auth.revoke_token(session, name, actor="cli")
    typer.echo(f"revoked {name}")


@contextmanager
def _session(*, write: bool = True) -> Iterator[Session]:
    """Migrate, then one transaction; a ControlPlaneError becomes a clean CLI failure."""
    from controlplane.storage import Database, upgrade

    config = settings()
    url = store_url(config, create=write)
    db = Database(url)
    try:
        upgrade(url)
        with db.write() if write else db.read() as session:
            yield session
    except ControlPlaneError as exc:
        fail(str(exc))
    finally:
        db.dispose()


if __name__ == "__main__":
    app()
