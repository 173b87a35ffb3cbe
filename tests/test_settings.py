"""Settings: precedence, validation in one sentence, and secrets that stay secret."""

from __future__ import annotations

import ssl

import pytest

from insiderwatch.stream.security import faust_credentials, kafka_python_security, ssl_context
from insiderwatch.stream.settings import Settings, SettingsError


def test_flag_beats_env_beats_default():
    environ = {"INSIDERWATCH_TOPIC_ALERTS": "from-env", "INSIDERWATCH_BATCH_MAX_MS": "7"}
    settings = Settings.load({"topic.alerts": "from-flag"}, environ=environ)
    assert settings.topic_alerts == "from-flag"
    assert settings.batch_max_ms == 7
    assert settings.topic_dlq == "access-events-dlq"


@pytest.mark.parametrize(
    ("overrides", "environ", "message"),
    [
        ({"security.protocol": "TLS"}, {}, "security.protocol must be one of"),
        ({"security.protocol": "SASL_SSL"}, {}, "needs sasl.username"),
        ({"security.protocol": "SASL_SSL", "sasl.username": "u"}, {}, "needs a password"),
        (
            {"security.protocol": "SASL_SSL", "sasl.username": "u", "sasl.mechanism": "MD5"},
            {"INSIDERWATCH_SASL_PASSWORD": "p"},
            "sasl.mechanism must be one of",
        ),
        ({"ssl.cafile": "/no/such/ca.pem"}, {}, "not a readable file"),
        ({"sasl.password.file": "/no/such/file"}, {}, "not a readable file"),
        ({"ssl.certfile": __file__}, {}, "must be set together"),
        ({"batch.max.ms": "soon"}, {}, "must be an integer"),
    ],
)
def test_bad_security_settings_are_one_sentence(overrides, environ, message):
    with pytest.raises(SettingsError, match=message) as raised:
        Settings.load(overrides, environ=environ)
    assert "\n" not in str(raised.value)


def test_password_file_wins_and_is_masked(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("from-file\nignored second line\n")
    settings = Settings.load(
        {"security.protocol": "SASL_PLAINTEXT", "sasl.username": "svc"},
        environ={
            "INSIDERWATCH_SASL_PASSWORD": "from-env",
            "INSIDERWATCH_SASL_PASSWORD_FILE": str(secret),
        },
    )
    assert settings.resolved_sasl_password() == "from-file"
    described = settings.describe()
    assert described["sasl.password"] == "***"
    assert "from-env" not in repr(described) and "from-file" not in repr(described)
    kwargs = kafka_python_security(settings)
    assert kwargs == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "from-file",
    }
    credentials = faust_credentials(settings)
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.ssl_context is None
    assert "from-file" not in repr(credentials)


def test_tls_context_verifies_hostname_and_certificate():
    settings = Settings.load({"security.protocol": "SSL"}, environ={})
    context = ssl_context(settings)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert faust_credentials(settings).protocol.value == "SSL"
    assert ssl_context(Settings.load(environ={})) is None
