"""Kafka client security (TLS, SASL PLAIN / SCRAM) from settings, for every client we make.

One place turns ``security.*``, ``sasl.*`` and ``ssl.*`` settings into the keyword arguments
of the client libraries insiderwatch uses: kafka-python (admin, replay, tail, train) and
Faust (the worker). The password is read here, at the last moment,
from ``sasl.password.file`` or the ``INSIDERWATCH_SASL_PASSWORD`` env var; it is never a CLI
flag and never logged (:meth:`stream.settings.Settings.describe` masks it).

Example
-------
>>> from insiderwatch.stream.settings import Settings
>>> kafka_python_security(Settings.load(environ={}))
{'security_protocol': 'PLAINTEXT'}
"""

from __future__ import annotations

import ssl
from typing import Any

from insiderwatch.stream.settings import Settings

__all__ = [
    "ssl_context",
    "kafka_python_security",
    "faust_credentials",
]


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying TLS context (hostname checked), or None for plaintext protocols."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=settings.ssl_cafile or None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.ssl_certfile:
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    return context


def _sasl(settings: Settings) -> dict[str, Any]:
    if not settings.security_protocol.startswith("SASL_"):
        return {}
    return {
        "sasl_mechanism": settings.sasl_mechanism,
        "sasl_plain_username": settings.sasl_username,
        "sasl_plain_password": settings.resolved_sasl_password(),
    }


def kafka_python_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's ``KafkaAdminClient``/``KafkaProducer``/``KafkaConsumer``."""
    kwargs: dict[str, Any] = {"security_protocol": settings.security_protocol}
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    kwargs.update(_sasl(settings))
    return kwargs


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for ``faust.App``: SASL or SSL credentials, or None."""
    import faust

    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.resolved_sasl_password(),
            ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
