"""The releases lookup: version sets resolved from real listings (a find-links directory, and a
PEP 503 / PEP 691 index served over HTTP on this machine)."""

from __future__ import annotations

import html
import http.server
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible_collections.hpc.globus_compute.plugins.filter.python_minors import python_minors
from ansible_collections.hpc.globus_compute.plugins.lookup.releases import places, resolve

PROJECT = "globus-compute-endpoint"
FILES = [
    "globus_compute_endpoint-4.17.0-py3-none-any.whl",
    "globus_compute_endpoint-4.17.1.tar.gz",
    "globus_compute_endpoint-4.18.0-py3-none-any.whl",
    "globus_compute_endpoint-4.19.0a0-py3-none-any.whl",
    "globus_compute_endpoint-4.19.0-py3-none-any.whl",
    "globus_compute_endpoint-5.0.0-py3-none-any.whl",
    # Other projects and other files of the wheelhouse are not releases of it.
    "globus_compute_sdk-9.0.0-py3-none-any.whl",
    "globus_compute_endpoint_extras-9.0.0-py3-none-any.whl",
    "README.txt",
]


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    for name in FILES:
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def one(policy: dict, **wanted: object) -> list[str]:
    return resolve(PROJECT, [{"name": "python_envs_matrix[0]", **wanted}], policy, "python_envs_matrix")[0]["versions"]


@pytest.mark.parametrize(
    ("wanted", "versions"),
    [
        ({"specifier": ">=4.17,<5"}, ["4.17.0", "4.17.1", "4.18.0", "4.19.0"]),
        ({"newest": 2}, ["4.19.0", "5.0.0"]),
        ({"specifier": "<5", "newest": 3}, ["4.17.1", "4.18.0", "4.19.0"]),
        ({"specifier": "~=4.19.0", "newest": 3}, ["4.19.0"]),
        ({"specifier": ">=4.18,<5", "prereleases": True}, ["4.18.0", "4.19.0a0", "4.19.0"]),
        ({"specifier": "", "newest": 1, "prereleases": True}, ["5.0.0"]),
    ],
)
def test_a_set_selects_its_releases_oldest_first(wheelhouse: Path, wanted: dict, versions: list[str]) -> None:
    assert one({"offline": True, "find-links": [str(wheelhouse)]}, **wanted) == versions


def test_releases_the_runtime_cannot_serve_are_never_selected(tmp_path: Path) -> None:
    """An epoch, a local version, a fifth part, a fifth digit: packaging takes them, the request
    contract does not, so a set must not build them. Nor is a directory or a dangling link a release."""
    for name in (
        "globus_compute_endpoint-4.19.0+hpc1-py3-none-any.whl",
        "globus_compute_endpoint-1!4.19.0-py3-none-any.whl",
        "globus_compute_endpoint-4.19.0.0.1-py3-none-any.whl",
        "globus_compute_endpoint-123456.0.0-py3-none-any.whl",
        "globus_compute_endpoint-4.18.0-py3-none-any.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "globus_compute_endpoint-7.7.7-py3-none-any.whl").mkdir()
    (tmp_path / "globus_compute_endpoint-8.8.8-py3-none-any.whl").symlink_to(tmp_path / "gone")
    assert one({"offline": True, "find-links": [str(tmp_path)]}, specifier=">=4") == ["4.18.0"]


def test_pre_releases_stay_out_even_when_they_alone_match(wheelhouse: Path) -> None:
    """packaging's filter() lets pre-releases through when nothing else matches; a set does not."""
    with pytest.raises(ValueError) as failed:
        one({"offline": True, "find-links": [str(wheelhouse)]}, specifier="==4.19.0a0")
    assert str(failed.value) == (
        f"python_envs_matrix[0]: no {PROJECT} release matches ==4.19.0a0 without pre-releases at {wheelhouse}"
    )


@pytest.mark.parametrize(
    ("wanted", "line"),
    [
        ({"specifier": ">=6"}, "no globus-compute-endpoint release matches >=6 without pre-releases at {}"),
        (
            {"specifier": ">=6", "newest": 2, "prereleases": True},
            "no globus-compute-endpoint release matches >=6 (newest 2) at {}",
        ),
        ({"specifier": "four"}, "'four' is neither a release such as 4.19.0 nor a PEP 440 specifier such as >=4.17,<5"),
    ],
)
def test_a_set_that_holds_nothing_fails_in_one_line_naming_the_entry(wheelhouse: Path, wanted: dict, line: str) -> None:
    with pytest.raises(ValueError) as failed:
        one({"offline": True, "find-links": [str(wheelhouse)]}, **wanted)
    assert str(failed.value) == "python_envs_matrix[0]: " + line.format(wheelhouse)


def test_a_wheelhouse_the_controller_cannot_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as failed:
        one({"offline": True, "find-links": [str(tmp_path / "absent")]}, newest=1)
    assert str(failed.value) == (
        f"python_envs_matrix: the releases of {PROJECT} cannot be listed at {tmp_path / 'absent'}:"
        f" find-links {tmp_path / 'absent'} is not a directory the controller can read"
    )


def test_the_places_are_the_policys() -> None:
    assert places({}) == [("index", "https://pypi.org/simple/")]
    assert places({"offline": True, "find-links": ["/w"], "index-url": "https://mirror/simple"}) == [
        ("find-links", "/w")
    ]
    assert places(
        {"find-links": "/w", "index": [{"url": "https://a/simple/"}], "extra-index-url": ["https://b/simple"]}
    ) == [("find-links", "/w"), ("index", "https://a/simple/"), ("index", "https://b/simple/")]


class _Index(http.server.BaseHTTPRequestHandler):
    """One project page: HTML (PEP 503, with a yanked file) or JSON (PEP 691), as the client accepts."""

    def do_GET(self) -> None:
        if self.path != "/simple/globus-compute-endpoint/":
            self.send_error(404)
            return
        files = [
            ("globus_compute_endpoint-4.18.0-py3-none-any.whl", False, ">=3.10"),
            ("globus_compute_endpoint-4.19.0-py3-none-any.whl", False, ">=3.11,<3.14"),
            ("globus_compute_endpoint-4.20.0-py3-none-any.whl", True, ">=3.12"),
        ]
        if "application/vnd.pypi.simple.v1+json" in self.headers.get("Accept", "") and self.server.speaks_json:  # type: ignore[attr-defined]
            kind = "application/vnd.pypi.simple.v1+json"
            body = json.dumps({"files": [{"filename": f, "yanked": y, "requires-python": r} for f, y, r in files]})
        else:
            kind = "text/html"
            body = "".join(
                f'<a href="../../f/{f}" data-requires-python="{html.escape(r)}"{" data-yanked" if y else ""}>{f}</a>'
                for f, y, r in files
            )
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[True, False], ids=["pep691", "pep503"])
def index(request: pytest.FixtureRequest) -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Index)
    server.speaks_json = request.param  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/simple"
    server.shutdown()


def test_an_index_is_listed_without_its_yanked_files(index: str) -> None:
    assert one({"index-url": index}, newest=5) == ["4.18.0", "4.19.0"]


def test_an_index_that_does_not_answer_is_named(index: str) -> None:
    with pytest.raises(ValueError) as failed:
        resolve("other-project", [{"name": "x", "newest": 1}], {"index-url": index}, "python_envs_matrix")
    assert str(failed.value).startswith(
        f"python_envs_matrix: the releases of other-project cannot be listed at {index}/:"
    )


def test_each_release_comes_with_its_requires_python_from_its_wheel(tmp_path: Path) -> None:
    """A find-links directory has no page: the wheel's own METADATA says it; an sdist, or a wheel that
    says nothing, gives an empty one."""
    for version, requires in (("4.18.0", ">=3.10"), ("4.19.0", ">=3.11,<3.15"), ("4.19.1", None)):
        with zipfile.ZipFile(tmp_path / f"globus_compute_endpoint-{version}-py3-none-any.whl", "w") as wheel:
            header = f"Requires-Python: {requires}\n" if requires else ""
            wheel.writestr(
                f"globus_compute_endpoint-{version}.dist-info/METADATA",
                f"Metadata-Version: 2.1\nName: globus-compute-endpoint\nVersion: {version}\n{header}\nLong text.\n",
            )
    (tmp_path / "globus_compute_endpoint-4.19.2.tar.gz").write_bytes(b"")
    found = resolve(PROJECT, [{"name": "x", "newest": 4}], {"offline": True, "find-links": [str(tmp_path)]})[0]
    assert found["requires_python"] == {"4.18.0": ">=3.10", "4.19.0": ">=3.11,<3.15", "4.19.1": "", "4.19.2": ""}


def test_an_index_says_each_releases_requires_python(index: str) -> None:
    """PEP 691's requires-python, and PEP 503's data-requires-python (HTML-escaped: &gt;=3.10)."""
    found = resolve(PROJECT, [{"name": "x", "newest": 5}], {"index-url": index})[0]
    assert found["requires_python"] == {"4.18.0": ">=3.10", "4.19.0": ">=3.11,<3.14"}


@pytest.mark.parametrize(
    ("requires", "minors"),
    [
        ("", ["3.9", "3.10", "3.11", "3.13"]),
        (">=3.10", ["3.10", "3.11", "3.13"]),
        (">=3.11,<3.13", ["3.11"]),
        # A minor one of whose releases is admitted: a 3.9 interpreter may be 3.9.2.
        (">=3.9.2", ["3.9", "3.10", "3.11", "3.13"]),
        ("!=3.10.*", ["3.9", "3.11", "3.13"]),
    ],
)
def test_the_minors_a_requires_python_admits_oldest_first(requires: str, minors: list[str]) -> None:
    assert python_minors(["3.13", "3.9", "3.11", "3.10", "3.11", "3.x", "3"], requires) == minors
