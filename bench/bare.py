"""The yardstick for the webhook bench: a Flask app that only answers TwiML.

It runs under the same gunicorn settings as Kinline and gets the same requests, so the
ratio of the two throughputs is what Kinline's own work costs.
"""

from __future__ import annotations

from flask import Flask, Response

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Thanks.</Message></Response>'


def create_app() -> Flask:
    """The bare app: ``POST /sms/inbound`` answers one TwiML message."""
    app = Flask(__name__)

    @app.post("/sms/inbound")
    def inbound() -> Response:
        return Response(TWIML, mimetype="application/xml")

    return app
