"""The web side: ``create_app()`` builds the Flask app; routes stay thin."""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
import redis
from flask import Flask, Response, request
from flask.cli import AppGroup
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from bot import delivery, directory, engine, jobs, payments, providers
from bot.config import Settings
from bot.exceptions import BadInbound, ConfigError, DirectoryImportError
from bot.runtime import Runtime, configure_logging
from bot.transport import twilio_signature_ok
from bot.web import checkout, desk, is_local, runtime, tablet

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the web app.

    Args:
        settings: Settings to use (read from the environment when omitted).
        runtime: Resources to use (built from the settings when omitted).

    Returns:
        The Flask app.
    """
    settings = settings or (runtime.settings if runtime else Settings.from_env())
    rt = runtime or Runtime.create(settings)
    app = Flask(__name__)
    # Webhooks are small; the dev phone (console mode only) uploads photos.
    largest = 8 * 2**20 if settings.console_mode else 256 * 2**10
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=largest,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
    )
    app.extensions["kinline"] = rt
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies
        )
    configure_logging()

    app.add_url_rule("/healthz", view_func=healthz)
    app.add_url_rule("/sms/inbound", view_func=sms_inbound, methods=["POST"])
    app.add_url_rule("/sms/status", view_func=sms_status, methods=["POST"])
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(OperationalError, unavailable)
    app.register_error_handler(redis.RedisError, unavailable)
    app.register_error_handler(ConfigError, unavailable)
    app.add_url_rule("/payments/stripe/webhook", view_func=stripe_webhook, methods=["POST"])
    app.add_url_rule("/provider/events", view_func=provider_events, methods=["POST"])
    app.register_blueprint(checkout.blueprint)
    app.register_blueprint(desk.blueprint)
    app.register_blueprint(tablet.blueprint)
    app.register_blueprint(tablet.reply_blueprint)
    if settings.console_mode:
        from bot.web.dev_phone import blueprint

        app.register_blueprint(blueprint)
    app.cli.add_command(directory_cli)
    app.cli.add_command(db_cli)
    app.cli.add_command(desk.desk_cli)
    return app


def plain(message: str, status: int) -> Response:
    """A short plain-text answer with a status code."""
    return Response(message + "\n", status=status, mimetype="text/plain")


def twiml(replies: list[str]) -> Response:
    """Replies as a TwiML document (an empty ``<Response/>`` means silence)."""
    response = MessagingResponse()
    for body in replies:
        response.message(body)
    return Response(str(response), mimetype="text/xml")


def public_url() -> str:
    """The URL Twilio called: ``PUBLIC_BASE_URL`` + path + query, never the proxy's view."""
    query = request.query_string.decode("latin-1")
    base = runtime().settings.public_base_url
    return f"{base}{request.path}" + (f"?{query}" if query else "")


# --- routes ---------------------------------------------------------------------------


def healthz() -> tuple[dict[str, Any], int]:
    """Liveness and readiness: SQL and Redis both answer."""
    rt = runtime()
    with rt.db.session() as session:
        session.execute(text("SELECT 1"))
    rt.redis.ping()
    return {"ok": True, "console_mode": rt.settings.console_mode}, 200


def refused() -> Response | None:
    """A 403 for a Twilio webhook without a valid signature (None when it may go on)."""
    settings = runtime().settings
    if settings.twilio_auth_token:
        signature = request.headers.get("X-Twilio-Signature")
        token = settings.twilio_auth_token
        if not twilio_signature_ok(token, public_url(), request.form, signature):
            return plain("Forbidden: missing or invalid X-Twilio-Signature", 403)
    elif not (settings.console_mode and is_local(request.remote_addr)):
        return plain("Forbidden: unsigned requests are taken only locally in console mode", 403)
    return None


def sms_inbound() -> Response:
    """Twilio's inbound SMS webhook: check, record, handle, answer in TwiML."""
    if (answer := refused()) is not None:
        return answer
    try:
        inbound = engine.parse_inbound(request.form, runtime().settings)
        replies = engine.receive(runtime(), inbound)
    except BadInbound as error:
        return plain(f"Bad request: {error}", 400)
    return twiml(replies or [])


def sms_status() -> Response:
    """Twilio's status callback for texts we sent: recorded, out of order safe."""
    if (answer := refused()) is not None:
        return answer
    sid, status = request.form.get("MessageSid", ""), request.form.get("MessageStatus", "")
    if not sid or not status:
        return plain("Bad request: MessageSid and MessageStatus are required", 400)
    row = request.args.get("o", "")
    outbound_id = int(row) if row.isdigit() and len(row) < 18 else None
    error_code = request.form.get("ErrorCode") or None
    result = jobs.record_status(runtime(), sid, status, error_code, outbound_id)
    return plain(result, 200)


def stripe_webhook() -> Response:
    """Stripe's events: verified over the raw body, credited once, the rest ignored."""
    rt = runtime()
    if rt.settings.payments != "stripe":
        return plain("Not found: Stripe payments are not enabled", 404)
    payload = request.get_data()  # the raw body, before anything parses it
    try:
        event = payments.stripe_event(rt, payload, request.headers.get("Stripe-Signature"))
    except ValueError as error:
        return plain(f"Bad request: {error}", 400)
    return plain(payments.handle_stripe_event(rt, event), 200)


def provider_events() -> Response:
    """A delivery provider's events: HMAC of the raw body, applied once per event id."""
    rt = runtime()
    if rt.settings.provider != "http":
        return json_answer({"error": "the HTTP provider is not enabled"}, 404)
    body = request.get_data()  # the raw body, before anything parses it
    if not providers.verify(rt, body, request.headers.get("X-Kinline-Signature")):
        return json_answer({"error": "missing or invalid X-Kinline-Signature"}, 401)
    try:
        event = json.loads(body)
        if not isinstance(event, dict):
            raise ValueError("not an object")
        result = providers.handle_event(rt, event)
    except providers.EventError as error:
        return json_answer({"error": str(error)}, error.status)
    except ValueError as error:
        return json_answer({"error": f"body must be a JSON object: {error}"}, 400)
    return json_answer({"result": result}, 200)


def json_answer(data: dict[str, Any], status: int) -> Response:
    """A JSON answer with a status code."""
    return Response(json.dumps(data), status=status, mimetype="application/json")


def http_error(error: HTTPException) -> Response:
    """Plain-text errors with their reason, never an HTML page."""
    return plain(f"{error.code} {error.name}: {error.description}", error.code or 500)


def unavailable(error: Exception) -> Response:
    """The database or Redis is unreachable: 503, logged, nothing half-written."""
    logger.error("backing service unavailable: %s", error)
    response = plain("Service temporarily unavailable, please retry", 503)
    response.headers["Retry-After"] = "5"
    return response


# --- command line ---------------------------------------------------------------------


directory_cli = AppGroup("directory", help="Manage the facility and inmate directory.")


@directory_cli.command("import")
@click.option("--facilities", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--inmates", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def directory_import(facilities: Path | None, inmates: Path | None) -> None:
    """Insert or update facilities and people from CSV files (all rows or none)."""
    if facilities is None and inmates is None:
        raise click.UsageError("give --facilities, --inmates or both")
    rt = runtime()
    with rt.db.session() as session, ExitStack() as files:
        f, i = (
            files.enter_context(open(path, newline="", encoding="utf-8-sig")) if path else None
            for path in (facilities, inmates)
        )
        try:
            report = directory.import_directory(session, f, i)
            outbox = delivery.Outbox()
            delivery.apply_moves(rt, session, outbox, report.moves)
        except DirectoryImportError as error:
            for problem in error.problems:
                click.echo(problem, err=True)
            raise click.ClickException(
                f"{len(error.problems)} problem(s); nothing imported"
            ) from None
        session.commit()
    if rt.redis_client is not None:
        outbox.send(rt)  # without Redis the texts wait in SQL for the worker's sweep
    click.echo(str(report))


db_cli = AppGroup("db", help="Database schema.")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply every Alembic migration to DATABASE_URL."""
    from bot.store.migrate import upgrade

    upgrade(runtime().settings.database_url)
    click.echo("database is up to date")


def __getattr__(name: str) -> Any:
    """``webhooks.app``: the WSGI app, built on first access rather than at import."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
