"""A TrueNAS node of one's own (issue 15 §6), booted through the admin API and never
through DigitalOcean: its own address, its own API key, the disks asked for, its
public names in the world's DNS, and gone when powered off."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import pydo
import pytest
from dnslib import QTYPE, DNSRecord
from websockets.sync.client import connect

from fakes.world import World
from tests.fakes.truenas.test_fleet import TIMEOUT, Rpc, admin, advance, pinned

GIB = 2**30


@pytest.fixture(scope="module")
def world(slow_world: World) -> World:
    return slow_world


@pytest.fixture(scope="module")
def client(slow_client: pydo.Client) -> pydo.Client:
    return slow_client


@pytest.fixture(scope="module")
def own_node(world: World) -> dict:
    answer = admin(world, "POST", "/truenas/own-nodes", {
        "disks": [{"serial": "WD-A1", "size_gigabytes": 20},
                  {"serial": "WD-B2", "size_gigabytes": 20},
                  {"serial": "ST-C3", "size_gigabytes": 30}],
        "hostnames": ["nas.home.test"], "memory_gigabytes": 16})
    assert answer.status_code == 200, answer.text
    advance(world, 600)           # middleware boots in virtual minutes
    entry = world.truenas.nodes[-answer.json()["node_id"]]
    assert entry.server.wait_ready(TIMEOUT)
    listing = admin(world, "GET", "/truenas/nodes").json()["nodes"]
    return {**answer.json(), **next(n for n in listing
                                    if n["address"] == answer.json()["address"])}


@contextmanager
def rpc(node: dict, api_key: str) -> Iterator[tuple[Rpc, dict]]:
    context = pinned(node["certificate"])
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    url = f"wss://{node['address']}:{node['ports']['https']}/api/current"
    with connect(url, ssl=context, proxy=None, open_timeout=TIMEOUT) as websocket:
        session = Rpc(websocket)
        answer = session.call("auth.login_ex", {"mechanism": "API_KEY_PLAIN",
                                                "username": "truenas_admin",
                                                "api_key": api_key})
        yield session, answer["result"]


def test_an_own_node_answers_on_an_address_no_droplet_gets(world: World, own_node: dict,
                                                           client: pydo.Client) -> None:
    address = ipaddress.ip_address(own_node["address"])
    assert address in world.backend.public_addresses.network
    droplets = client.droplets.list()["droplets"]
    assert all(d["networks"]["v4"][0]["ip_address"] != own_node["address"] for d in droplets)
    assert droplets == [] or own_node["node_id"] not in {d["id"] for d in droplets}


def test_its_disks_are_the_ones_asked_for_in_probe_order(own_node: dict) -> None:
    with rpc(own_node, own_node["api_key"]) as (session, login):
        assert login["response_type"] == "SUCCESS"
        disks = session.result("disk.query")
    assert disks[0]["name"] == "vda"         # its boot disk
    assert [(d["name"], d["serial"], d["size"], d["pool"]) for d in disks[1:]] == [
        ("sda", "WD-A1", 20 * GIB, None), ("sdb", "WD-B2", 20 * GIB, None),
        ("sdc", "ST-C3", 30 * GIB, None)]


def test_it_reports_the_memory_it_was_booted_with(own_node: dict) -> None:
    with rpc(own_node, own_node["api_key"]) as (session, _login):
        assert session.result("system.info")["physmem"] == 16 * GIB


def test_a_node_booted_with_less_than_a_gib_of_memory_is_refused(world: World) -> None:
    answer = admin(world, "POST", "/truenas/own-nodes", {
        "disks": [{"serial": "RAM-0", "size_gigabytes": 10}], "memory_gigabytes": 0})
    assert answer.status_code == 400, answer.text
    assert "memory" in answer.json()["error"]


def test_it_takes_its_own_api_key_and_not_the_images(world: World, own_node: dict) -> None:
    assert own_node["api_key"] != world.truenas.api_key
    with rpc(own_node, world.truenas.api_key) as (_session, login):
        assert login["response_type"] != "SUCCESS"


def test_its_public_names_resolve_to_it(world: World, own_node: dict) -> None:
    question = DNSRecord.question("nas.home.test", "A")
    answer = DNSRecord.parse(question.send(world.host, world.dns.port, timeout=TIMEOUT))
    assert [str(rr.rdata) for rr in answer.rr if rr.rtype == QTYPE.A] == [own_node["address"]]


@pytest.mark.parametrize("disks", [[], [{"serial": "X", "size_gigabytes": 10}] * 2,
                                   [{"serial": "Y", "size_gigabytes": 0}]])
def test_a_node_without_disks_or_with_a_serial_twice_is_refused(world: World,
                                                                 disks: list) -> None:
    answer = admin(world, "POST", "/truenas/own-nodes", {"disks": disks})
    assert answer.status_code == 400, answer.text


def test_powered_off_it_answers_no_more(world: World) -> None:
    answer = admin(world, "POST", "/truenas/own-nodes", {
        "disks": [{"serial": "OFF-1", "size_gigabytes": 5}], "hostnames": ["off.home.test"]})
    node = answer.json()
    gone = admin(world, "DELETE", f"/truenas/own-nodes/{node['node_id']}",
                 {"hostnames": ["off.home.test"]})
    assert gone.status_code == 200, gone.text
    with pytest.raises(OSError):
        socket.create_connection((node["address"], node["ports"]["https"]), timeout=2).close()
    assert admin(world, "DELETE", f"/truenas/own-nodes/{node['node_id']}").status_code == 404
