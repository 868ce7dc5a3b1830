"""Target parsing: every form in DESIGN.md, and ConfigError (never anything else) otherwise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecsgrpc.errors import ConfigError
from ecsgrpc.targets import (
    DEFAULT_CLOUDMAP_HEALTH,
    ChainSpec,
    CloudMapSpec,
    DnsSpec,
    EcsSpec,
    SrvSpec,
    StaticSpec,
    TargetSpec,
    parse_target,
)

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("agent:50051", StaticSpec((("agent", 50051),), target="agent:50051")),
        ("127.0.0.2:7", StaticSpec((("127.0.0.2", 7),), target="127.0.0.2:7")),
        ("[::1]:50051", StaticSpec((("::1", 50051),), target="[::1]:50051")),
        (
            "static:///10.0.0.1:1,10.0.0.2:2",
            StaticSpec(
                (("10.0.0.1", 1), ("10.0.0.2", 2)), target="static:///10.0.0.1:1,10.0.0.2:2"
            ),
        ),
        (
            "dns:///agent.local:50051",
            DnsSpec("agent.local", 50051, None, "dns:///agent.local:50051"),
        ),
        (
            "dns://127.0.0.1:5353/agent.local:50051",
            DnsSpec(
                "agent.local", 50051, ("127.0.0.1", 5353), "dns://127.0.0.1:5353/agent.local:50051"
            ),
        ),
        ("dns://10.0.0.2/a.b:1", DnsSpec("a.b", 1, ("10.0.0.2", 53), "dns://10.0.0.2/a.b:1")),
        (
            "dns+srv:///_grpc._tcp.agent.local",
            SrvSpec("_grpc._tcp.agent.local", None, "dns+srv:///_grpc._tcp.agent.local"),
        ),
        (
            "dns+srv://[::1]:53/_grpc._tcp.a",
            SrvSpec("_grpc._tcp.a", ("::1", 53), "dns+srv://[::1]:53/_grpc._tcp.a"),
        ),
        (
            "ecs://workflow/agent?port=50051",
            EcsSpec("workflow", "agent", 50051, 10.0, "ecs://workflow/agent?port=50051"),
        ),
        (
            "ecs://c/s?poll=2.5&port=1",
            EcsSpec("c", "s", 1, 2.5, "ecs://c/s?poll=2.5&port=1"),
        ),
    ],
)
def test_valid_targets(target: str, expected: object) -> None:
    assert parse_target(target) == expected


def test_cloudmap_with_every_option() -> None:
    text = "cloudmap://workflow.local/workflow-agent?health=healthy&port=50051&poll=2s&attr.stage=prod&attr.ECS_CLUSTER_NAME=c%201"
    spec = parse_target(text)
    assert spec == CloudMapSpec(
        namespace="workflow.local",
        service="workflow-agent",
        health="HEALTHY",
        port=50051,
        poll=2.0,
        attributes=(("ECS_CLUSTER_NAME", "c 1"), ("stage", "prod")),
        target=text,
    )


def test_cloudmap_defaults() -> None:
    spec = parse_target("cloudmap://workflow.local/workflow-agent")
    assert isinstance(spec, CloudMapSpec)
    assert spec.health == DEFAULT_CLOUDMAP_HEALTH == "HEALTHY_OR_ELSE_ALL"
    assert spec.port is None
    assert spec.poll == 5.0
    assert spec.attributes == ()


def test_chain_of_the_default_target() -> None:
    spec = parse_target(
        "cloudmap://workflow.local/workflow-agent|dns:///workflow-agent.workflow.local:50051"
    )
    assert isinstance(spec, ChainSpec)
    assert [type(link) for link in spec.links] == [CloudMapSpec, DnsSpec]
    assert spec.links[1] == DnsSpec(
        "workflow-agent.workflow.local", 50051, None, "dns:///workflow-agent.workflow.local:50051"
    )


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("", "empty target"),
        ("agent", "missing port"),
        ("agent:0", "out of range"),
        ("agent:65536", "out of range"),
        ("agent:" + "9" * 5000, "out of range"),
        (":50051", "empty host"),
        ("agent:http", "not a number"),
        ("foo://a/b", "unknown scheme 'foo'"),
        ("dns:///agent.local:x", "not a number"),
        ("ipv4:10.0.0.1:1,::1", "is not an IPv4 address"),
        ("ipv4:agent:50051", "is not an IPv4 address"),
        ("ipv6:10.0.0.1", "is not an IPv6 address"),
        ("ipv4:", "needs an address"),
        ("ipv4:10.0.0.1:1,10.0.0.1:1", "listed twice"),
        ("unix:", "missing socket path"),
        ("unix://relative.sock", "absolute path"),
        ("unix:/" + "x" * 200, "longer than 107 bytes"),
        ("dns:a..b:1", "not a valid DNS name"),
        ("dns:///", "missing name:port"),
        ("dns://ns.example:53/a.b:1", "must be an IP address"),
        ("dns:///a..b:1", "not a valid DNS name"),
        ("dns:///a.b:1?x=1", "no query parameters"),
        ("dns+srv:///", "missing SRV name"),
        ("static:///", "lists no address"),
        ("static:///a:1,a:1", "twice"),
        ("static://x/a:1", "no authority"),
        ("cloudmap:///svc", "missing Cloud Map namespace"),
        ("cloudmap://ns/", "missing Cloud Map service"),
        ("cloudmap://ns/svc?health=SICK", "health='SICK' is not one of"),
        ("cloudmap://ns/svc?color=red", "unknown query parameter 'color'"),
        ("cloudmap://ns/svc?port=1&port=2", "given twice"),
        ("cloudmap://ns/svc?port=99999", "out of range"),
        ("cloudmap://ns/svc?poll=0", "out of range"),
        ("cloudmap://ns/svc?poll=soon", "not a number of seconds"),
        ("cloudmap://ns/svc?attr.=x", "not a valid Cloud Map attribute name"),
        ("cloudmap://ns/svc?health", "is not KEY=VALUE"),
        ("ecs://cluster/service", "missing port"),
        ("ecs://cluster/service?port=50051&mode=x", "unknown query parameter 'mode'"),
        ("ecs:///service?port=1", "not a valid ECS cluster name"),
        ("ecs://c/s/t?port=1", "not a valid ECS service name"),
        ("agent:1|", "empty link"),
        ("|agent:1", "empty link"),
        ("dns:///a b:1", "spaces"),
        ("dns:///a.b:1#frag", "fragments"),
    ],
)
def test_bad_targets_say_what_is_wrong(target: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_target(target)
    message = str(info.value)
    assert says in message
    # The message quotes the target (long ones at least start the same way).
    assert repr(target)[:40] in message


def test_bad_link_in_chain_quotes_the_whole_chain() -> None:
    with pytest.raises(ConfigError, match=r"'cloudmap://ns/svc\|dns:///x:y'.*not a number"):
        parse_target("cloudmap://ns/svc|dns:///x:y")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # gRPC's naming (its doc/naming.md), with its default port 443.
        ("dns:///agent.local", DnsSpec("agent.local", 443, None, "dns:///agent.local")),
        ("dns:agent.local:50051", DnsSpec("agent.local", 50051, None, "dns:agent.local:50051")),
        ("dns:agent.local", DnsSpec("agent.local", 443, None, "dns:agent.local")),
        ("ipv4:10.0.0.1", StaticSpec((("10.0.0.1", 443),), target="ipv4:10.0.0.1")),
        (
            "ipv4:10.0.0.1:1,10.0.0.2",
            StaticSpec((("10.0.0.1", 1), ("10.0.0.2", 443)), target="ipv4:10.0.0.1:1,10.0.0.2"),
        ),
        (
            "ipv6:[::1]:50051,fd00::2",
            StaticSpec((("::1", 50051), ("fd00::2", 443)), target="ipv6:[::1]:50051,fd00::2"),
        ),
        ("ipv6:::1", StaticSpec((("::1", 443),), target="ipv6:::1")),
        (
            "unix:/run/agent.sock",
            StaticSpec((("unix:/run/agent.sock", 0),), "unix:/run/agent.sock"),
        ),
        ("unix:agent.sock", StaticSpec((("unix:agent.sock", 0),), "unix:agent.sock")),
        ("unix:///run/a.sock", StaticSpec((("unix:/run/a.sock", 0),), "unix:///run/a.sock")),
        ("unix-abstract:agent", StaticSpec((("unix-abstract:agent", 0),), "unix-abstract:agent")),
    ],
)
def test_grpc_target_names(target: str, expected: TargetSpec) -> None:
    assert parse_target(target) == expected


def test_a_socket_endpoint_is_its_own_address() -> None:
    from ecsgrpc.endpoints import Endpoint

    assert Endpoint("unix:/run/agent.sock", 0).address == "unix:/run/agent.sock"
    assert Endpoint("::1", 443).address == "[::1]:443"


_SCHEMES = st.sampled_from(
    ["", "static://", "dns://", "dns+srv://", "cloudmap://", "ecs://", "DNS://", "x://"]
)
_TOKENS = st.sampled_from(
    [*"ab.:_-/?&=%|[]#019 \t", "attr.", "port=", "poll=", "health=", "::1", "%41", "é"]
)
_PIECES = st.lists(_TOKENS, max_size=25).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_any_string_gives_a_spec_or_config_error(text: str) -> None:
    try:
        spec = parse_target(text)
    except ConfigError as exc:
        assert str(exc)
    else:
        assert spec is not None


@settings(max_examples=800, deadline=None)
@given(_SCHEMES, _PIECES)
def test_target_shaped_strings_give_a_spec_or_config_error(scheme: str, rest: str) -> None:
    try:
        spec = parse_target(scheme + rest)
    except ConfigError as exc:
        assert repr(scheme + rest)[:20] in str(exc) or (scheme + rest).strip() == ""
    else:
        assert spec.target  # every spec remembers the text it came from


@given(
    st.lists(
        st.tuples(st.ip_addresses(v=4).map(str), st.integers(1, 65535)),
        min_size=1,
        max_size=5,
        unique=True,
    )
)
@settings(deadline=None)
def test_static_lists_round_trip(addresses: list[tuple[str, int]]) -> None:
    text = "static:///" + ",".join(f"{h}:{p}" for h, p in addresses)
    spec = parse_target(text)
    assert isinstance(spec, StaticSpec)
    assert list(spec.addresses) == addresses
