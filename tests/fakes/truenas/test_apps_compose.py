"""Compose files judged as `docker compose config` and Docker's parsers judge them.

The grammars (Go durations, go-units sizes, port specs, image references, Compose
interpolation) are checked with hypothesis against small reference models written
from the grammars; the loader with the cases a chart author meets.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fakes.truenas.apps.compose import ComposeError, NotModelled, load
from fakes.truenas.apps.interpolation import InterpolationError, interpolate, substitute
from fakes.truenas.apps.syntax import (
    SyntaxProblem,
    parse_bytes,
    parse_duration,
    parse_image_reference,
    parse_port_spec,
)

UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# --- durations (Go's time.ParseDuration) ---------------------------------------------
@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(UNITS))),
                min_size=1, max_size=5),
       st.sampled_from(["", "+", "-"]))
def test_a_go_duration_is_the_sum_of_its_parts(parts, sign):
    text = sign + "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * UNITS[unit] for n, unit in parts) * (-1 if sign == "-" else 1)
    assert parse_duration(text) == pytest.approx(expected)


@given(st.integers(0, 999), st.integers(0, 999), st.sampled_from(["s", "m", "h", "ms"]))
def test_a_go_duration_takes_fractions(whole, fraction, unit):
    text = f"{whole}.{fraction}{unit}"
    assert parse_duration(text) == pytest.approx(float(f"{whole}.{fraction}") * UNITS[unit])


@pytest.mark.parametrize("text, message", [
    ("10", 'time: missing unit in duration "10"'),
    ("10x", 'time: unknown unit "x" in duration "10x"'),
    ("", 'time: invalid duration ""'),
    ("s", 'time: invalid duration "s"'),
    ("1m30", 'time: missing unit in duration "1m30"'),
    (".s", 'time: invalid duration ".s"'),
])
def test_a_malformed_duration_is_refused_with_gos_words(text, message):
    with pytest.raises(SyntaxProblem) as problem:
        parse_duration(text)
    assert str(problem.value) == message


def test_zero_needs_no_unit_and_1m30s_is_ninety_seconds():
    assert parse_duration("0") == 0
    assert parse_duration("1m30s") == 90


# --- sizes ---------------------------------------------------------------------------
@given(st.integers(0, 4096), st.sampled_from(["", "b", "k", "K", "kb", "m", "M", "MiB", "g",
                                             "G", "gb", "t"]))
def test_memory_sizes_are_binary_multiples(number, suffix):
    multiplier = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[
        suffix[:1].lower() if suffix[:1].lower() in "kmgt" else ""]
    assert parse_bytes(f"{number}{suffix}") == number * multiplier


@pytest.mark.parametrize("text", ["512X", "M", "1.2.3M", "-5M", "five"])
def test_a_malformed_size_is_refused(text):
    with pytest.raises(SyntaxProblem, match=re.escape(f"invalid size: '{text}'")):
        parse_bytes(text)


# --- port specs ----------------------------------------------------------------------
ports = st.integers(1, 65535)


@given(ports, ports, st.sampled_from(["", "/tcp", "/udp"]),
       st.sampled_from(["", "127.0.0.1:", "0.0.0.0:", "[::1]:"]))
def test_a_short_port_spec_names_host_and_container_ports(host, container, proto, ip):
    (binding,) = parse_port_spec(f"{ip}{host}:{container}{proto}")
    assert binding.host_port == host
    assert binding.container_port == container
    assert binding.protocol == (proto[1:] or "tcp")
    assert binding.host_ip == {"": "", "127.0.0.1:": "127.0.0.1", "0.0.0.0:": "0.0.0.0",
                               "[::1]:": "::1"}[ip]


@given(ports)
def test_a_container_port_alone_is_published_on_a_port_docker_picks(container):
    (binding,) = parse_port_spec(container)
    assert (binding.container_port, binding.host_port) == (container, None)


@given(st.integers(1, 60000), st.integers(1, 60000), st.integers(0, 20))
def test_equal_ranges_pair_up_port_by_port(host, container, width):
    bindings = parse_port_spec(f"{host}-{host + width}:{container}-{container + width}")
    assert [(b.host_port, b.container_port) for b in bindings] == [
        (host + i, container + i) for i in range(width + 1)]


@pytest.mark.parametrize("spec, message", [
    ("80:80/icmp", "invalid proto: icmp"),
    ("80:abc", "invalid containerPort: abc"),
    ("x:80", "invalid hostPort: x"),
    ("80:70000", "invalid containerPort: 70000"),
    ("10.0.0.300:80:80", "invalid IP address: 10.0.0.300"),
    ("8000-8001:80-82", "invalid ranges specified for container and host Ports: 80-82 and "
                        "8000-8001"),
])
def test_a_malformed_port_spec_is_refused_with_dockers_words(spec, message):
    with pytest.raises(SyntaxProblem) as problem:
        parse_port_spec(spec)
    assert str(problem.value) == message


@given(st.text(max_size=20))
def test_any_text_is_either_a_port_spec_or_a_clear_refusal(text):
    try:
        bindings = parse_port_spec(text)
    except SyntaxProblem as problem:
        assert str(problem)
    else:
        assert all(0 <= b.container_port <= 65535 for b in bindings)


# --- image references ----------------------------------------------------------------
@pytest.mark.parametrize("text, repository, tag", [
    ("caddy:2.8.4", "caddy", "2.8.4"),
    ("caddy", "caddy", None),
    ("library/caddy:2", "caddy", "2"),
    ("docker.io/library/redis:7.4-alpine", "redis", "7.4-alpine"),
    ("gocd/gocd-server:v24.5.0", "gocd/gocd-server", "v24.5.0"),
    ("ghcr.io/org/app:1.0", "ghcr.io/org/app", "1.0"),
    ("localhost:5000/app", "localhost:5000/app", None),
    ("cockroachdb/cockroach@sha256:" + "a" * 64, "cockroachdb/cockroach", None),
])
def test_well_formed_image_references_name_their_repository(text, repository, tag):
    reference = parse_image_reference(text)
    assert (reference.repository, reference.tag) == (repository, tag)


@pytest.mark.parametrize("text, message", [
    ("Caddy:2", "invalid reference format: repository name (library/Caddy) must be "
                "lowercase"),
    ("caddy:", "invalid reference format"),
    ("caddy::2", "invalid reference format"),
    ("-caddy", "invalid reference format"),
    ("caddy:2 ", "invalid reference format"),
    ("caddy@sha256:abc", "invalid reference format"),
    ("caddy:" + "x" * 129, "invalid reference format"),
    ("", "invalid reference format"),
])
def test_malformed_image_references_are_refused(text, message):
    with pytest.raises(SyntaxProblem) as problem:
        parse_image_reference(text)
    assert str(problem.value) == message


components = st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)?", fullmatch=True)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(st.lists(components, min_size=1, max_size=3), st.one_of(st.none(), tags))
def test_generated_hub_references_parse_back(path, tag):
    name = "/".join(path)
    assume(len(name) < 200)
    text = name + (f":{tag}" if tag else "")
    reference = parse_image_reference(text)
    assert reference.repository == name.removeprefix("library/")
    assert reference.tag == tag


# --- interpolation -------------------------------------------------------------------
names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True)
literal = st.text(alphabet=st.characters(blacklist_characters="${}"), max_size=5)


@st.composite
def templates(draw):
    """A template and the value Compose gives it, built piece by piece."""
    env = draw(st.dictionaries(names, st.text(alphabet="abc", max_size=3), max_size=4))
    pieces, expected = [], []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["lit", "escape", "braced", "soft", "hard", "alt"]))
        name = draw(names)
        value = env.get(name)
        default = draw(literal)
        if kind == "lit":
            pieces.append(default)
            expected.append(default)
        elif kind == "escape":
            pieces.append("$$")
            expected.append("$")
        elif kind == "braced":
            pieces.append(f"${{{name}}}")
            expected.append(value or "")
        elif kind == "soft":
            pieces.append(f"${{{name}:-{default}}}")
            expected.append(value if value else default)
        elif kind == "hard":
            pieces.append(f"${{{name}-{default}}}")
            expected.append(value if value is not None else default)
        else:
            pieces.append(f"${{{name}:+{default}}}")
            expected.append(default if value else "")
    return "".join(pieces), env, "".join(expected)


@given(templates())
def test_interpolation_follows_composes_operators(case):
    template, env, expected = case
    assert substitute(template, env) == expected


@given(names, st.text(alphabet="abc xyz", max_size=10))
def test_a_missing_required_variable_is_an_error_naming_it(name, message):
    document = {"services": {"web": {"image": f"${{{name}:?{message}}}"}}}
    with pytest.raises(InterpolationError) as error:
        interpolate(document, {})
    suffix = f": {message}" if message else ""
    assert str(error.value) == (f"error while interpolating services.web.image: required "
                                f"variable {name} is missing a value{suffix}")


def test_an_empty_required_variable_fails_only_with_the_colon_form():
    assert substitute("${A?no}", {"A": ""}) == ""
    with pytest.raises(Exception, match="required variable A is missing a value: no"):
        interpolate({"x": "${A:?no}"}, {"A": ""})


def test_defaults_nest_and_list_items_are_named_by_brackets():
    assert substitute("${A:-${B:-deep}}", {}) == "deep"
    assert substitute("$A-$B.", {"A": "1", "B": "2"}) == "1-2."
    with pytest.raises(InterpolationError, match=r"services\.web\.environment\.\[\]"):
        interpolate({"services": {"web": {"environment": ["X=${NOPE:?}"]}}})


def test_an_unclosed_substitution_is_an_invalid_format():
    with pytest.raises(InterpolationError, match="invalid interpolation format for x"):
        interpolate({"x": "${A"})


# --- whole files -----------------------------------------------------------------------
def test_a_full_service_is_understood():
    project = load({
        "x-portals": [{"name": "Web", "scheme": "http", "host": "0.0.0.0", "port": 8080}],
        "services": {
            "db": {"image": "postgres:16", "environment": {"POSTGRES_PASSWORD": "s3cret",
                                                           "PORT": 5432, "DEBUG": True},
                   "volumes": ["/mnt/tank/apps/db:/var/lib/postgresql/data",
                               {"type": "volume", "source": "cache", "target": "/cache"}],
                   "healthcheck": {"test": ["CMD", "pg_isready"], "interval": "10s",
                                   "timeout": "5s", "retries": 5, "start_period": "1m30s"},
                   "deploy": {"resources": {"limits": {"memory": "512M", "cpus": "0.5"}}},
                   "x-note": "ignored"},
            "web": {"image": "nginx:1.27", "command": "nginx -g 'daemon off;'",
                    "environment": ["A=1", "B"], "restart": "unless-stopped",
                    "ports": ["8080:80", "127.0.0.1:8443:443/tcp",
                              {"target": 53, "published": "5353", "protocol": "udp"}],
                    "depends_on": {"db": {"condition": "service_healthy"}}},
        },
        "volumes": {"cache": {}},
    }, environment={"B": "from-env"})
    db, web = project.services["db"], project.services["web"]
    assert db.environment == {"POSTGRES_PASSWORD": "s3cret", "PORT": "5432", "DEBUG": "true"}
    assert [(m.type, m.source, m.target) for m in db.mounts] == [
        ("bind", "/mnt/tank/apps/db", "/var/lib/postgresql/data"),
        ("volume", "cache", "/cache")]
    check = db.healthcheck
    assert (check.interval, check.timeout, check.retries, check.start_period) == (10, 5, 5, 90)
    assert (db.limits.memory, db.limits.cpus) == (512 * 2**20, 0.5)
    assert web.command == ["nginx", "-g", "daemon off;"]
    assert web.environment == {"A": "1", "B": "from-env"}
    assert [(p.host_ip, p.host_port, p.container_port, p.protocol) for p in web.ports] == [
        ("", 8080, 80, "tcp"), ("127.0.0.1", 8443, 443, "tcp"), ("", 5353, 53, "udp")]
    assert [(d.service, d.condition) for d in web.depends_on] == [("db", "service_healthy")]
    assert project.start_order() == ["db", "web"]
    assert project.extensions["x-portals"][0]["port"] == 8080


@pytest.mark.parametrize("document, message", [
    ({"services": {"web": {"image": "a", "bogus": 1}}},
     "services.web additional properties 'bogus' not allowed"),
    ({"services": {"web": {"image": "a"}}, "bogus": 1},
     "additional properties 'bogus' not allowed"),
    ({"services": {"web": {"ports": ["80"]}}},
     'service "web" has neither an image nor a build context specified: invalid compose '
     "project"),
    ({"services": {"web": {"image": "a", "volumes": ["data:/data"]}}},
     'service "web" refers to undefined volume data: invalid compose project'),
    ({"services": {"web": {"image": "a", "depends_on": ["db"]}}},
     'service "web" depends on undefined service "db": invalid compose project'),
    ({"services": {"a": {"image": "a", "depends_on": ["b"]},
                   "b": {"image": "b", "depends_on": ["a"]}}},
     "dependency cycle detected: a -> b -> a"),
    ({"services": {"web": {"image": "a", "healthcheck": {"test": "x", "interval": "10"}}}},
     'services.web.healthcheck.interval: time: missing unit in duration "10"'),
    ({"services": {"web": {"image": "a", "healthcheck": {"test": "x", "interval": 10}}}},
     "services.web.healthcheck.interval must be a string"),
    ({"services": {"web": {"image": "a", "depends_on": {"db": {"condition": "up"}}},
                   "db": {"image": "b"}}},
     "services.web.depends_on.db.condition value must be one of 'service_started', "
     "'service_healthy', 'service_completed_successfully'"),
    ({"services": {"web": {"image": "a", "ports": ["80:80/icmp"]}}}, "invalid proto: icmp"),
    ({"services": {"web": {"image": "a", "restart": "sometimes"}}},
     "invalid restart policy: sometimes"),
    ({"services": {"web": {"image": "a", "deploy": {"resources": {"limits": {
        "memory": "lots"}}}}}}, "invalid size: 'lots'"),
    ({"services": {"web": {"image": "a", "volumes": ["/data:relative"]}}},
     "services.web.volumes.0: invalid mount target, must be an absolute path: relative"),
    (["not", "a", "mapping"], "Top-level object must be a mapping"),
])
def test_what_compose_config_refuses_is_refused_with_its_message(document, message):
    with pytest.raises(ComposeError) as error:
        load(document)
    assert str(error.value) == message


@pytest.mark.parametrize("service", [
    {"build": "."},
    {"image": "a", "env_file": ".env"},
    {"image": "a", "deploy": {"replicas": 2}},
    {"image": "a", "extends": {"service": "b"}},
])
def test_what_the_fake_does_not_model_is_refused_saying_so(service):
    with pytest.raises(NotModelled, match="the fake TrueNAS"):
        load({"services": {"web": service}})


def test_a_malformed_image_passes_config_and_fails_at_pull():
    project = load({"services": {"web": {"image": "Caddy:2"}}})
    assert "must be lowercase" in project.services["web"].image_problem()


def test_yaml_text_is_read_as_middleware_reads_it():
    # PyYAML (YAML 1.1, what middleware loads with): unquoted 22:22 is base 60
    project = load("services:\n  ssh:\n    image: a\n    ports:\n      - 22:22\n"
                   "      - '2222:22'\n")
    assert [p.container_port for p in project.services["ssh"].ports] == [1342, 22]


def test_profiled_services_are_left_out_and_x_keys_ignored():
    project = load({"x-anything": {"a": 1}, "services": {
        "web": {"image": "a", "x-custom": 1},
        "debug": {"image": "b", "profiles": ["debug"]}}})
    assert list(project.services) == ["web"]


def test_the_definition_changes_with_the_service_and_only_then():
    one = load({"services": {"a": {"image": "x:1"}, "b": {"image": "y"}}})
    two = load({"services": {"a": {"image": "x:2"}, "b": {"image": "y"}}})
    assert one.services["b"].definition == two.services["b"].definition
    assert one.services["a"].definition != two.services["a"].definition


scalar_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=8),
    st.sampled_from(["80:80", "/mnt/tank/x:/y", "10s", "service_healthy", "${X}", "CMD"]))
compose_keys = st.sampled_from([
    "image", "ports", "volumes", "environment", "depends_on", "healthcheck", "restart",
    "deploy", "command", "networks", "network_mode", "test", "interval", "retries",
    "condition", "resources", "limits", "memory", "cpus", "target", "published", "type",
    "source", "x-a", "db", "web", "required", "protocol", "host_ip", "bind", "external"])
compose_values = st.recursive(scalar_values, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(compose_keys, inner, max_size=4)),
    max_leaves=12)


@given(st.fixed_dictionaries(
    {"services": st.dictionaries(st.sampled_from(["web", "db"]),
                                 st.dictionaries(compose_keys, compose_values, max_size=5),
                                 max_size=2)},
    optional={"volumes": st.dictionaries(st.sampled_from(["data"]), compose_values,
                                         max_size=1)}))
def test_any_document_is_either_a_project_or_a_compose_error(document):
    try:
        project = load(document)
    except ComposeError as error:
        assert str(error)
        return
    for service in project.services.values():
        assert isinstance(service.image, str)
        service.image_problem()
        service.create_problem()
    assert sorted(project.start_order()) == sorted(project.services)
