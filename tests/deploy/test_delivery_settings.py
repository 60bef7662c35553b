"""The local KafkaSource stand-in retries exactly as the deployed KafkaSource is configured."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _dispatcher() -> ModuleType:
    path = ROOT / "stack" / "kafkasource" / "dispatcher.py"
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location("kafkasource_dispatcher", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while being built
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))


def test_dispatcher_defaults_equal_the_charts_kafkasource_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RETRY", "BACKOFF_POLICY", "BACKOFF_DELAY", "TIMEOUT"):
        monkeypatch.delenv(f"BOXOFFICE_DISPATCHER_{name}", raising=False)
    values = yaml.safe_load((ROOT / "helm" / "boxoffice" / "values.yaml").read_text())
    delivery = values["kafkaSource"]["delivery"]
    dispatcher = _dispatcher()
    settings = dispatcher.parse_args(
        ["--sink", "http://127.0.0.1:9/", "--bootstrap", "127.0.0.1:9"]
    )
    assert settings.retry == delivery["retry"]
    assert settings.backoff_policy == delivery["backoffPolicy"]
    assert settings.backoff_delay == dispatcher.iso_duration(delivery["backoffDelay"])
    assert settings.timeout == dispatcher.iso_duration(delivery["timeout"])
