"""The e2e purchase path with every function of the running stack in a container of its image:
browse -> book -> CONFIRMED -> ticket PDF -> check-in (and a cancelled purchase), through the front
door, the dispatcher delivering to consume_order's container.

For this module the stack's functions are swapped for their containers on the same ports
(`BOXOFFICE_CONTAINERS=1`, as `make up CONTAINERS=1` runs them) and put back as processes after
it. The purchase tests are tests/e2e/test_purchase_flow.py's own, run again here."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support_containers import FUNCTIONS, docker, stack_shell

pytestmark = pytest.mark.containers

purchase_flow = importlib.import_module("e2e.test_purchase_flow")


@pytest.fixture(scope="module", autouse=True)
def functions_in_containers() -> Iterator[None]:
    stack_shell("functions_start", {"BOXOFFICE_CONTAINERS": "1"})
    try:
        yield
    finally:
        stack_shell("functions_start", {"BOXOFFICE_CONTAINERS": "0"})


def listener_pids(port: int) -> set[int]:
    out = subprocess.run(
        ["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return {int(p.split("=")[1]) for p in out.replace(",", " ").split() if p.startswith("pid=")}


def test_every_function_port_of_the_stack_is_served_by_a_process_of_its_container() -> None:
    for function in FUNCTIONS:
        port = int(os.environ[f"BOXOFFICE_{function.upper()}_URL"].rsplit(":", 1)[1])
        name = stack_shell(f"fn_container {function}")
        info = json.loads(docker("inspect", name).stdout)[0]
        assert info["State"]["Running"], name
        assert info["Config"]["Image"] == stack_shell(f"image_name {function}")
        assert info["HostConfig"]["ReadonlyRootfs"] is True
        assert info["Config"]["User"] == "10001:10001"
        pids = listener_pids(port)
        assert pids, f"nothing listens on {port}"
        for pid in pids:  # the listening process lives in the container's cgroup
            assert info["Id"] in Path(f"/proc/{pid}/cgroup").read_text(), (function, pid)


test_buy_confirm_print_scan_admitted_scan_again_refused_then_no_cancellation = (
    purchase_flow.test_buy_confirm_print_scan_admitted_scan_again_refused_then_no_cancellation
)
test_cancelled_purchase_cancels_its_order_and_tickets_and_returns_the_seats = (
    purchase_flow.test_cancelled_purchase_cancels_its_order_and_tickets_and_returns_the_seats
)
