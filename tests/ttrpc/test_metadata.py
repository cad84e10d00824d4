"""Metadata (ttrpc's ``metadata.go`` helpers) and address forms (containerd's
``pkg/shim/util.go``)."""

from __future__ import annotations

import threading

import pytest

from runtime_v2.ttrpc import MD, Code, socket_name

from .conftest import raises_status


def test_set_replaces_values_and_lowercases_the_key() -> None:
    md = MD()
    md.set("Foo", "a", "b")
    md.set("FOO", "c")
    assert md.get("foo") == ["c"]
    assert md["fOo"] == ["c"]
    assert list(md) == ["foo"]


def test_set_without_values_deletes_the_key() -> None:
    md = MD({"k": ["v"]})
    md.set("K")
    assert "k" not in md
    assert len(md) == 0


def test_get_of_an_unknown_key_is_none() -> None:
    assert MD().get("missing") is None
    with pytest.raises(KeyError):
        MD()["missing"]


def test_append_adds_after_existing_values() -> None:
    md = MD()
    md.append("k", "1")
    md.append("K", "2", "3")
    assert md["k"] == ["1", "2", "3"]
    assert md.pairs() == [("k", "1"), ("k", "2"), ("k", "3")]


def test_from_pairs_collects_repeated_keys_in_order() -> None:
    md = MD.from_pairs([("A", "1"), ("b", "2"), ("a", "3")])
    assert dict(md) == {"a": ["1", "3"], "b": ["2"]}


def test_clone_is_a_deep_copy_safe_under_concurrency() -> None:
    md = MD({"k": ["v"]})
    clones: list[MD] = []

    def mutate() -> None:
        c = md.clone()
        c.append("k", "mine")
        clones.append(c)

    threads = [threading.Thread(target=mutate) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert md["k"] == ["v"]
    assert all(c["k"] == ["v", "mine"] for c in clones)


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("unix:///run/containerd/s/abc", "/run/containerd/s/abc"),
        ("unix:/run/x.sock", "/run/x.sock"),
        ("/run/x.sock", "/run/x.sock"),
        ("@shim-test-abstract", "\0@shim-test-abstract"),
        ("shim-test", "\0shim-test"),
        ("unix://@abstract", "\0abstract"),
    ],
)
def test_address_forms(address: str, name: str) -> None:
    assert socket_name(address) == name


def test_unsupported_scheme_is_refused_by_name() -> None:
    with raises_status(Code.UNIMPLEMENTED, match="vsock"):
        socket_name("vsock://3:1024")


@pytest.mark.parametrize("address", ["", "unix://"])
def test_empty_address_is_invalid(address: str) -> None:
    with raises_status(Code.INVALID_ARGUMENT):
        socket_name(address)
