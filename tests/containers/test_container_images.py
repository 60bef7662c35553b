"""Every function's image, as `make images` built it: its entrypoint serves the right function on
$PORT, it runs read-only and as uid 10001, it carries no tools it does not need, and the
images share every layer but their own function's."""

from __future__ import annotations

import pytest
import requests
from support_containers import FUNCTIONS, docker, image_of, inspect_image, running_container

pytestmark = pytest.mark.containers

# A route that only this function serves, and what it answers without credentials; every other
# function answers it 404 (`no route`). consume_order's POST / refuses a request that is no
# CloudEvent; housekeeping's POST / runs one (idempotent) round; payment_webhook refuses a delivery
# without the provider's signature.
OWN_ROUTE: dict[str, tuple[str, str, int]] = {
    "get_event": ("GET", "/events?limit=1", 200),
    "get_customer": ("GET", "/customers/me", 401),
    "create_booking": ("GET", "/bookings", 401),
    "check_in": ("GET", "/.well-known/ticket-keys", 200),
    "waiting_room": ("PUT", "/events/7e0e0000-0000-4000-8000-00000000ffff/queue", 401),
    "consume_order": ("POST", "/", 400),
    "housekeeping": ("POST", "/", 200),
    "payment_webhook": ("POST", "/payments/webhook", 400),
}


def test_every_function_has_an_image_and_a_route_here() -> None:
    assert sorted(OWN_ROUTE) == FUNCTIONS
    for function in FUNCTIONS:
        assert inspect_image(function)["Config"]["Env"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_image_runs_its_function_as_uid_10001_on_port(function: str) -> None:
    config = inspect_image(function)["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/usr/local/bin/boxoffice-entrypoint"]
    assert f"FUNCTION={function}" in config["Env"]
    with running_container(function) as c:
        method, path, status = OWN_ROUTE[function]
        answer = requests.request(method, c.url + path, timeout=10)
        assert answer.status_code == status, answer.text
        if status >= 400:
            assert answer.headers["Content-Type"].startswith("application/problem+json")


def test_a_route_of_another_function_is_a_404_problem() -> None:
    with running_container("get_event") as c:
        answer = requests.get(c.url + "/customers/me", timeout=10)
        assert answer.status_code == 404
        assert answer.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_root_is_read_only_tmp_is_writable_and_no_tool_or_setuid_program_is_there(
    function: str,
) -> None:
    script = (
        "id -u; touch /opt/venv/x 2>/dev/null && echo root-writable; "
        "touch /app/x 2>/dev/null && echo app-writable; touch /tmp/x && echo tmp-ok; "
        "for t in curl wget apt apt-get pip pip3 gcc cc make git ssh sudo; do "
        "command -v $t >/dev/null && echo has-$t; done; "
        "find / -xdev -type f -perm /6000 2>/dev/null | sed 's/^/setuid:/'; "
        "python -c 'import boxoffice, functions_framework, granian, psycopg; print(\"imports-ok\")'"
    )
    out = docker(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",  # noqa: S108
        "--entrypoint", "sh", image_of(function), "-c", script,
    ).stdout.split()  # fmt: skip
    assert out == ["10001", "tmp-ok", "imports-ok"]


def test_the_images_share_every_layer_but_their_functions_own() -> None:
    layers = {f: inspect_image(f)["RootFS"]["Layers"] for f in FUNCTIONS}
    shared = {tuple(ls[:-1]) for ls in layers.values()}
    assert len(shared) == 1, "the images differ below their last layer"
    assert len({ls[-1] for ls in layers.values()}) == len(FUNCTIONS)
