"""Settings come from environment variables named once in `config.ENV_VARS`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from boxoffice.config import ENV_VARS, Settings
from boxoffice.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "BOXOFFICE_DATABASE_URL": "postgresql://boxoffice@127.0.0.1:25432/boxoffice",
    "BOXOFFICE_OIDC_ISSUER": "http://127.0.0.1:28080/realms/boxoffice/",
}


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**REQUIRED, **overrides})


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_missing_required_variable_is_a_configuration_error_naming_it(name: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != name}
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env(env)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_empty_required_variable_counts_as_missing(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        settings(**{name: ""})


def test_required_variables_are_exactly_those_without_a_default() -> None:
    assert {n for n, (default, _) in ENV_VARS.items() if default is None} == set(REQUIRED)


def test_defaults_apply_when_variables_are_unset() -> None:
    s = settings()
    assert s.db_pool_min == 1
    assert s.db_pool_max == 10
    assert s.db_timeout == 3.0
    assert s.oidc_audience == "boxoffice-api"
    assert s.jwks_min_refresh == 30.0
    assert s.jwt_leeway == 30
    assert s.booking_topic == "booking"
    assert s.problem_base_uri == "https://boxoffice.example/problems/"
    assert s.max_tickets_per_order == 10
    assert s.idempotency_ttl_hours == 24
    assert s.catalogue_max_age == 5
    assert s.s3_bucket == "boxoffice-tickets"


def test_issuer_loses_its_trailing_slash_and_derives_the_default_jwks_url() -> None:
    s = settings()
    assert s.oidc_issuer == "http://127.0.0.1:28080/realms/boxoffice"
    assert s.jwks_url == "http://127.0.0.1:28080/realms/boxoffice/protocol/openid-connect/certs"


def test_explicit_values_override_defaults() -> None:
    s = settings(
        BOXOFFICE_DB_POOL_MAX="3",
        BOXOFFICE_DB_TIMEOUT_SECONDS="0.5",
        BOXOFFICE_JWKS_URL="http://keys.example/jwks",
        BOXOFFICE_PUBLIC_BASE_URL="https://api.example/",
    )
    assert (s.db_pool_max, s.db_timeout) == (3, 0.5)
    assert s.jwks_url == "http://keys.example/jwks"
    assert s.public_base_url == "https://api.example"


@pytest.mark.parametrize("raw", ["ten", "1.5", "0x10", " "])
def test_non_integer_value_is_a_configuration_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="BOXOFFICE_DB_POOL_MAX"):
        settings(BOXOFFICE_DB_POOL_MAX=raw)


def test_integer_below_its_minimum_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="BOXOFFICE_MAX_TICKETS_PER_ORDER"):
        settings(BOXOFFICE_MAX_TICKETS_PER_ORDER="0")


@pytest.mark.parametrize("raw", ["soon", "NaN", "-1", "0", "Infinity"])
def test_bad_timeout_is_a_configuration_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="BOXOFFICE_DB_TIMEOUT_SECONDS"):
        settings(BOXOFFICE_DB_TIMEOUT_SECONDS=raw)


def test_every_default_is_accepted_by_its_parser() -> None:
    # from_env with only the required variables reads every other one from its default
    assert isinstance(settings(), Settings)


def test_every_environment_variable_is_documented_in_the_readme() -> None:
    readme = ROOT / "README.md"
    assert readme.is_file(), "README.md does not exist yet"
    text = readme.read_text(encoding="utf-8")
    missing = [n for n in ENV_VARS if not re.search(rf"\b{re.escape(n)}\b", text)]
    assert not missing, f"README.md does not document: {', '.join(missing)}"


def test_a_setting_can_come_from_the_file_its_file_variable_names(tmp_path: Path) -> None:
    secret = tmp_path / "database-url"
    secret.write_text("postgresql://boxoffice:s3cret@db:5432/boxoffice\n")
    env = {
        "BOXOFFICE_DATABASE_URL_FILE": str(secret),
        "BOXOFFICE_OIDC_ISSUER": REQUIRED["BOXOFFICE_OIDC_ISSUER"],
    }
    assert Settings.from_env(env).database_url == "postgresql://boxoffice:s3cret@db:5432/boxoffice"


def test_a_setting_given_both_directly_and_by_file_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "audience"
    secret.write_text("other")
    with pytest.raises(ConfigurationError, match="BOXOFFICE_OIDC_AUDIENCE or"):
        settings(BOXOFFICE_OIDC_AUDIENCE="x", BOXOFFICE_OIDC_AUDIENCE_FILE=str(secret))


def test_an_unreadable_setting_file_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigurationError, match=r"BOXOFFICE_DATABASE_URL_FILE=.*nope"):
        Settings.from_env(
            {
                "BOXOFFICE_DATABASE_URL_FILE": str(missing),
                "BOXOFFICE_OIDC_ISSUER": REQUIRED["BOXOFFICE_OIDC_ISSUER"],
            }
        )
