"""The notifier against a real HTTP receiver on loopback: payloads, signing, dedup, cooldown, resolve, retries,
persistence and secret hygiene. A fake clock and a recording sleep make cooldown and backoff deterministic."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from embguard.alerts.incidents import Alert
from embguard.alerts.notifier import Notifier
from embguard.alerts.sender import Delivery
from embguard.alerts.webhooks import PAGERDUTY_EVENTS_URL, dedup_key, sign
from embguard.config.alert_targets import AlertTarget
from embguard.errors import AlertConfigError, EmbguardError

SLACK_TOKEN = "T0000SLACK/B0000/XXXXsecretslacktoken"
PD_KEY = "R0UT1NGKEYsecret0123456789abcdef"
HMAC_SECRET = "whsec-very-secret-value"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A loopback HTTP server that records requests and answers from a queue of (status, headers, body)."""

    port: int
    requests: list[Seen] = field(default_factory=list)
    replies: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    delay_s: float = 0.0
    server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, *statuses: int | tuple[int, dict[str, str], bytes]) -> None:
        for s in statuses:
            self.replies.append(s if isinstance(s, tuple) else (s, {}, b"oops" if s >= 400 else b"ok"))

    def on(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Seen("POST", self.path, dict(self.headers.items()), body))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)  # on purpose: a slow receiver
                status, headers, reply = receiver.replies.pop(0) if receiver.replies else (200, {}, b"ok")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class Clock:
    def __init__(self, t: float = 1_790_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def rx() -> Iterator[Receiver]:
    r = Receiver(0).start()
    yield r
    r.stop()


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def sleeps() -> list[float]:
    return []


def slack(rx: Receiver, name: str = "ops", **kw: Any) -> AlertTarget:
    return AlertTarget(name=name, kind="slack", url=SecretStr(rx.url(f"/slack/{SLACK_TOKEN}")), **kw)


def pagerduty(rx: Receiver, name: str = "pd", **kw: Any) -> AlertTarget:
    return AlertTarget(name=name, kind="pagerduty", url=SecretStr(rx.url("/pd")), routing_key=SecretStr(PD_KEY), **kw)


def webhook(rx: Receiver, name: str = "hook", signed: bool = True, **kw: Any) -> AlertTarget:
    return AlertTarget(
        name=name,
        kind="webhook",
        url=SecretStr(rx.url("/hook")),
        secret=SecretStr(HMAC_SECRET) if signed else None,
        **kw,
    )


def drift(key: str = "drift:docs", severity: str = "critical", **kw: Any) -> Alert:
    base: dict[str, Any] = dict(
        key=key,
        name="EmbeddingDriftSustained",
        collection="docs",
        severity=severity,
        summary="docs: query drift sustained 3 checks (MMD p=0.0004, retrieval p<1e-6)",
        details={"mmd_p_value": 0.0004, "mmd_statistic": 0.0831, "ood_rate": 0.27, "window_queries": 1200},
        clusters=(
            {
                "size": 312,
                "share": 0.26,
                "distance": 0.41,
                "examples": ["how do I rotate <!channel> api keys", "reset 2fa token"],
            },
            {"size": 88, "share": 0.07, "distance": 0.33, "examples": ["refund policy for eu"]},
        ),
        next_command="embguard retrain --collection docs",
    )
    base.update(kw)
    return Alert(**base)


def make(targets: list[AlertTarget], clock: Clock, sleeps: list[float], **kw: Any) -> Notifier:
    return Notifier(targets, clock=clock, sleep=sleeps.append, timeout_s=2.0, **kw)


# -- payloads ------------------------------------------------------------------------------------------------------


def test_slack_message_says_what_drifted_how_much_clusters_and_next_command(
    rx: Receiver, clock: Clock, sleeps: list[float]
) -> None:
    with make([slack(rx)], clock, sleeps) as n:
        [d] = n.update([drift()])
    assert d == Delivery(target="ops", key="drift:docs", action="trigger", ok=True, attempts=1, status=200, error="")
    [req] = rx.requests
    assert req.path == f"/slack/{SLACK_TOKEN}" and req.headers["Content-Type"] == "application/json"
    body = req.json()
    assert set(body) == {"text", "blocks"}
    assert "EmbeddingDriftSustained" in body["text"] and "MMD p=0.0004" in body["text"]
    assert body["blocks"][0]["type"] == "header" and "CRITICAL" in body["blocks"][0]["text"]["text"]
    text = "\n".join(b["text"]["text"] for b in body["blocks"] if b["type"] == "section")
    assert "query drift sustained 3 checks (MMD p=0.0004, retrieval p&lt;1e-6)" in text
    assert "`mmd_p_value`: 0.0004" in text and "`ood_rate`: 0.27" in text and "`window_queries`: 1200" in text
    assert "Top new query clusters" in text and "312 queries" in text and "26.0% of the window" in text
    # Example queries appear, escaped so user text cannot ping a channel.
    assert "“how do I rotate &lt;!channel&gt; api keys”" in text and "“refund policy for eu”" in text
    assert "<!channel>" not in req.body.decode()
    assert "*Next:* `embguard retrain --collection docs`" in text


def test_slack_resolve_says_resolved_and_which_alert(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    with make([slack(rx)], clock, sleeps) as n:
        n.update([drift()])
        clock.t += 7200
        [d] = n.update([])
    assert d.action == "resolve" and d.ok
    body = rx.requests[-1].json()
    assert body["text"].startswith("RESOLVED: EmbeddingDriftSustained (docs)") and "2h 0m" in body["text"]
    assert "RESOLVED" in body["blocks"][0]["text"]["text"]


@pytest.mark.parametrize("severity", ["critical", "warning", "info"])
def test_pagerduty_trigger_then_resolve_share_the_dedup_key(
    rx: Receiver, clock: Clock, sleeps: list[float], severity: str
) -> None:
    with make([pagerduty(rx)], clock, sleeps) as n:
        [t] = n.update([drift(severity=severity)])
        [r] = n.update([])
    assert (t.action, t.ok, r.action, r.ok) == ("trigger", True, "resolve", True)
    trig, res = (s.json() for s in rx.on("/pd"))
    assert trig["routing_key"] == PD_KEY and trig["event_action"] == "trigger"
    assert trig["dedup_key"] == "embguard:drift:docs" == res["dedup_key"] == dedup_key("drift:docs")
    p = trig["payload"]
    assert p["severity"] == severity and p["source"] == "embguard" and p["component"] == "docs"
    assert p["summary"].startswith("docs: query drift sustained")
    cd = p["custom_details"]
    assert cd["mmd_p_value"] == 0.0004 and cd["next_command"] == "embguard retrain --collection docs"
    assert cd["clusters"][0]["examples"][1] == "reset 2fa token"
    assert res == {"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": "embguard:drift:docs"}


def test_pagerduty_summary_is_capped_and_default_url_is_the_events_api(clock: Clock, sleeps: list[float]) -> None:
    seen: list[Any] = []
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), json.loads(request.content)))
        return httpx.Response(202, json={"status": "success"})

    target = AlertTarget(name="pd", kind="pagerduty", routing_key=SecretStr(PD_KEY))
    with make([target], clock, sleeps, transport=httpx.MockTransport(handler)) as n:
        [d] = n.update([drift(summary="x" * 5000, collection="")])
    assert d.ok and d.status == 202
    url, body = seen[0]
    assert url == PAGERDUTY_EVENTS_URL
    assert len(body["payload"]["summary"]) == 1024 and "component" not in body["payload"]


def test_pagerduty_without_routing_key_is_a_config_error_naming_the_target(rx: Receiver) -> None:
    target = AlertTarget(name="oncall-pd", kind="pagerduty", url=SecretStr(rx.url("/pd")))
    with pytest.raises(AlertConfigError, match="'oncall-pd'.*routing key.*routing_key_env") as err:
        Notifier([target])
    assert isinstance(err.value, EmbguardError) and rx.url("/pd") not in str(err.value)


@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_target_without_url_is_a_config_error(kind: str) -> None:
    with pytest.raises(AlertConfigError, match=f"'t1' \\({kind}\\) has no URL; set url_env or url_file"):
        Notifier([AlertTarget(name="t1", kind=kind)])  # type: ignore[arg-type]


def test_bad_url_and_duplicate_names_are_config_errors_without_echoing_the_url(rx: Receiver) -> None:
    bad = AlertTarget(name="t1", kind="slack", url=SecretStr("hooks.slack.com/services/SECRETPATH"))
    with pytest.raises(AlertConfigError, match="'t1'.*not an http:// or https:// URL") as err:
        Notifier([bad])
    assert "SECRETPATH" not in str(err.value)
    with pytest.raises(AlertConfigError, match="duplicate name.*'ops'"):
        Notifier([slack(rx), slack(rx)])


def test_webhook_is_signed_over_timestamp_and_raw_body(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    with make([webhook(rx)], clock, sleeps) as n:
        n.update([drift()])
    [req] = rx.requests
    ts = req.headers["X-Embguard-Timestamp"]
    assert ts == str(int(clock.t)) and req.headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(HMAC_SECRET.encode(), ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["X-Embguard-Signature"], expected)
    assert sign(HMAC_SECRET, ts, req.body) == expected
    wrong = "sha256=" + hmac.new(b"not-the-secret", ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(req.headers["X-Embguard-Signature"], wrong)
    tampered = req.body.replace(b"0.0004", b"0.9004")
    assert sign(HMAC_SECRET, ts, tampered) != req.headers["X-Embguard-Signature"]
    body = req.json()
    assert body["event"] == "trigger" and body["sent_at"] == "2026-09-21T14:13:20Z"
    assert body["alert"] == {
        "key": "drift:docs",
        "name": "EmbeddingDriftSustained",
        "collection": "docs",
        "severity": "critical",
        "summary": drift().summary,
        "details": dict(drift().details),
        "clusters": [dict(c) for c in drift().clusters],
        "next_command": "embguard retrain --collection docs",
    }


def test_unsigned_webhook_sends_and_warns_once(
    rx: Receiver, clock: Clock, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with make([webhook(rx, signed=False)], clock, sleeps) as n:
        n.update([drift()])
        n.update([drift(), drift("ood:docs")])
    assert len(rx.requests) == 2 and all("X-Embguard-Signature" not in r.headers for r in rx.requests)
    warnings = [r for r in caplog.records if "no secret" in r.getMessage()]
    assert len(warnings) == 1 and "'hook'" in warnings[0].getMessage()


def test_numpy_values_and_nan_are_sent_as_valid_json(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    np = pytest.importorskip("numpy")
    alert = drift(details={"p": np.float64(1e-7), "n": np.int64(5), "hist": np.array([1, 2]), "z": float("nan")})
    with make([webhook(rx)], clock, sleeps) as n:
        [d] = n.update([alert])
        assert d.ok
        assert n.update([alert]) == []  # numpy details compare without "truth value is ambiguous"
    assert rx.requests[0].json()["alert"]["details"] == {"p": 1e-7, "n": 5, "hist": [1, 2], "z": "nan"}


# -- dedup, cooldown, resolve --------------------------------------------------------------------------------------


def test_same_active_alert_is_sent_once(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    with make([slack(rx), webhook(rx)], clock, sleeps) as n:
        first = n.update([drift()])
        clock.t += 300
        second = n.update([drift(summary="docs: still drifting (MMD p=0.0001)")])
        third = n.update([drift(), drift()])
    assert [(d.target, d.action) for d in first] == [("ops", "trigger"), ("hook", "trigger")]
    assert second == [] and third == []
    assert len(rx.requests) == 2


def test_cooldown_sends_a_repeat_only_after_it_passes(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    with make([webhook(rx, cooldown_s=3600), slack(rx, cooldown_s=3000)], clock, sleeps) as n:
        n.update([drift()])
        clock.t += 2999
        assert n.update([drift()]) == []
        clock.t += 1
        assert [(d.target, d.action) for d in n.update([drift()])] == [("ops", "repeat")]
        clock.t += 600  # 3600 s after the trigger: the webhook is due; Slack was told only 600 s ago
        assert [(d.target, d.action) for d in n.update([drift()])] == [("hook", "repeat")]
        clock.t += 1
        assert n.update([drift()]) == []
    assert [r.json()["event"] for r in rx.on("/hook")] == ["trigger", "repeat"]
    slack_bodies = [r.json() for r in rx.on(f"/slack/{SLACK_TOKEN}")]
    assert len(slack_bodies) == 2 and "still active for 50m" in slack_bodies[1]["text"]


def test_pagerduty_repeat_is_a_trigger_on_the_same_dedup_key(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    with make([pagerduty(rx, cooldown_s=60)], clock, sleeps) as n:
        n.update([drift()])
        clock.t += 60
        [d] = n.update([drift()])
    assert d.action == "repeat"
    assert [(b["event_action"], b["dedup_key"]) for b in (r.json() for r in rx.requests)] == [
        ("trigger", "embguard:drift:docs")
    ] * 2


def test_resolve_is_sent_once_when_the_alert_disappears(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    with make([webhook(rx)], clock, sleeps) as n:
        n.update([drift(), drift("ood:docs", name="OODRateHigh", severity="warning")])
        [d] = n.update([drift()])
        assert n.update([drift()]) == [] and n.update([]) != []
        assert n.update([]) == []
    assert (d.key, d.action, d.ok) == ("ood:docs", "resolve", True)
    events = [(r.json()["event"], r.json()["alert"]["key"]) for r in rx.requests]
    assert events == [
        ("trigger", "drift:docs"),
        ("trigger", "ood:docs"),
        ("resolve", "ood:docs"),
        ("resolve", "drift:docs"),
    ]
    assert rx.requests[2].json()["alert"]["name"] == "OODRateHigh"


def test_an_alert_that_comes_back_after_resolving_triggers_again(
    rx: Receiver, clock: Clock, sleeps: list[float]
) -> None:
    with make([webhook(rx)], clock, sleeps) as n:
        n.update([drift()])
        n.update([])
        [d] = n.update([drift()])
    assert d.action == "trigger"


# -- retries -------------------------------------------------------------------------------------------------------


def test_5xx_is_retried_with_exponential_backoff(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    rx.answer(500, 502, 200)
    with make([webhook(rx)], clock, sleeps, backoff_s=0.5) as n:
        [d] = n.update([drift()])
    assert (d.ok, d.attempts, d.status, d.error) == (True, 3, 200, "")
    assert sleeps == [0.5, 1.0]
    assert len(rx.requests) == 3 and len({r.body for r in rx.requests}) == 1


def test_gives_up_after_max_attempts_and_retries_on_the_next_update(
    rx: Receiver, clock: Clock, sleeps: list[float]
) -> None:
    rx.answer(503, 503, 503, 503)
    with make([webhook(rx)], clock, sleeps) as n:
        [d] = n.update([drift()])
        assert (d.ok, d.attempts, d.status, d.action) == (False, 4, 503, "trigger")
        assert sleeps == [1.0, 2.0, 4.0]
        [again] = n.update([drift()])  # not marked as told, so the trigger is tried again
        assert (again.action, again.ok, again.attempts) == ("trigger", True, 1)
        assert n.update([drift()]) == []


def test_4xx_is_not_retried(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    rx.answer((400, {}, b"invalid_payload"))
    with make([slack(rx)], clock, sleeps) as n:
        [d] = n.update([drift()])
    assert (d.ok, d.attempts, d.status) == (False, 1, 400) and d.error == "HTTP 400: invalid_payload"
    assert sleeps == [] and len(rx.requests) == 1


def test_429_honours_retry_after_capped(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    rx.answer((429, {"Retry-After": "7"}, b""), (429, {"Retry-After": "86400"}, b""), (429, {}, b""), 200)
    with make([pagerduty(rx)], clock, sleeps) as n:
        [d] = n.update([drift()])
    assert (d.ok, d.attempts) == (True, 4)
    assert sleeps == [7.0, 60.0, 4.0]


def test_timeouts_are_retried(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    rx.delay_s = 0.5
    with Notifier([webhook(rx)], clock=clock, sleep=sleeps.append, timeout_s=0.1, max_attempts=2) as n:
        [d] = n.update([drift()])
    assert (d.ok, d.attempts, d.status) == (False, 2, None) and "timed out" in d.error
    assert sleeps == [1.0]


def test_receiver_down_does_not_raise_and_the_trigger_arrives_once_it_is_up(clock: Clock, sleeps: list[float]) -> None:
    down = Receiver(free_port())
    with make([webhook(down)], clock, sleeps, max_attempts=2) as n:
        [d] = n.update([drift()])
        assert (d.ok, d.attempts, d.status) == (False, 2, None) and "connection failed" in d.error
        down.start()
        try:
            clock.t += 300
            [d2] = n.update([drift()])
            assert (d2.action, d2.ok) == ("trigger", True)
            assert n.update([drift()]) == []
        finally:
            down.stop()


def test_resolve_goes_only_to_targets_that_were_told(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    down = Receiver(free_port())
    dead = AlertTarget(name="dead", kind="webhook", url=SecretStr(down.url("/hook")), secret=SecretStr("s"))
    with make([webhook(rx), dead], clock, sleeps, max_attempts=1) as n:
        assert [(d.target, d.ok) for d in n.update([drift()])] == [("hook", True), ("dead", False)]
        resolves = n.update([])
    assert [(d.target, d.action) for d in resolves] == [("hook", "resolve")]


def test_a_failed_resolve_is_retried_on_the_next_update(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    with make([webhook(rx)], clock, sleeps, max_attempts=1) as n:
        n.update([drift()])
        rx.answer(500)
        [d] = n.update([])
        assert (d.action, d.ok) == ("resolve", False)
        [d2] = n.update([])
        assert (d2.action, d2.ok) == ("resolve", True)
        assert n.update([]) == []


# -- persistence ---------------------------------------------------------------------------------------------------


def test_restart_neither_repages_within_cooldown_nor_forgets_to_resolve(
    rx: Receiver, clock: Clock, sleeps: list[float], tmp_path: Path
) -> None:
    state = tmp_path / "state" / "alerts.json"
    with make([slack(rx), pagerduty(rx)], clock, sleeps, state_path=state) as n:
        n.update([drift(), drift("ood:docs", name="OODRateHigh", severity="warning")])
    assert len(rx.requests) == 4 and state.exists()
    assert not list(state.parent.glob("*.tmp"))
    assert SLACK_TOKEN not in state.read_text() and PD_KEY not in state.read_text()
    clock.t += 600
    # "Restarted": drift still active within its cooldown, the OOD alert cleared while the daemon was down.
    with make([slack(rx), pagerduty(rx)], clock, sleeps, state_path=state) as n2:
        got = n2.update([drift()])
        assert [(d.target, d.key, d.action) for d in got] == [
            ("ops", "ood:docs", "resolve"),
            ("pd", "ood:docs", "resolve"),
        ]
        assert rx.requests[-1].json() == {
            "routing_key": PD_KEY,
            "event_action": "resolve",
            "dedup_key": "embguard:ood:docs",
        }
        assert "RESOLVED: OODRateHigh (docs)" in rx.requests[-2].json()["text"]
    clock.t += 3000  # 3600 s after the first trigger
    with make([slack(rx), pagerduty(rx)], clock, sleeps, state_path=state) as n3:
        assert [(d.target, d.action) for d in n3.update([drift()])] == [("ops", "repeat"), ("pd", "repeat")]
        assert n3.update([]) and n3.update([]) == []
    assert json.loads(state.read_text())["alerts"] == {}


def test_unreadable_state_starts_empty_and_is_kept_aside(
    rx: Receiver, clock: Clock, sleeps: list[float], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "alerts.json"
    state.write_text("{not json")
    with make([webhook(rx)], clock, sleeps, state_path=state) as n:
        [d] = n.update([drift()])
    assert d.action == "trigger" and d.ok
    assert (tmp_path / "alerts.json.corrupt").read_text() == "{not json"
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    assert "drift:docs" in json.loads(state.read_text())["alerts"]


# -- metrics and secret hygiene ------------------------------------------------------------------------------------


def test_metrics(rx: Receiver, clock: Clock, sleeps: list[float]) -> None:
    reg = CollectorRegistry()
    rx.answer(200, 400)
    with make([slack(rx), webhook(rx)], clock, sleeps, registry=reg) as n:
        n.update([drift(), drift("ood:docs")])
        assert reg.get_sample_value("embguard_alerts_active") == 2
        n.update([])
        assert reg.get_sample_value("embguard_alerts_active") == 0

    def sent(target: str, action: str, outcome: str) -> float | None:
        return reg.get_sample_value(
            "embguard_alerts_sent_total", {"target": target, "action": action, "outcome": outcome}
        )

    assert sent("ops", "trigger", "ok") == 2 and sent("hook", "trigger", "failed") == 1
    assert sent("hook", "trigger", "ok") == 1 and sent("ops", "resolve", "ok") == 2
    assert sent("hook", "resolve", "ok") == 1


def test_secrets_never_reach_errors_or_logs(
    rx: Receiver, clock: Clock, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    down = Receiver(free_port())
    dead = AlertTarget(name="dead", kind="slack", url=SecretStr(down.url(f"/slack/{SLACK_TOKEN}")))
    # Receivers may echo the request back in an error; the echo must not leak through the Delivery.
    rx.answer((403, {}, f"bad token {SLACK_TOKEN} for {PD_KEY}".encode()), (500, {}, HMAC_SECRET.encode()))
    with make([slack(rx), pagerduty(rx), webhook(rx), dead], clock, sleeps, max_attempts=1) as n:
        out = n.update([drift()])
        out += n.update([drift()]) + n.update([])
    assert any(not d.ok for d in out) and any(d.ok for d in out)
    texts = [d.error for d in out] + [r.getMessage() for r in caplog.records]
    texts += [str(r.args) for r in caplog.records]
    for s in (SLACK_TOKEN, PD_KEY, HMAC_SECRET, "XXXXsecretslacktoken"):
        assert not any(s in t for t in texts), s
    assert any("<redacted>" in d.error for d in out)
    # httpx's own request log line is kept, with the URL redacted.
    assert any(r.name == "httpx" and "<redacted>" in r.getMessage() for r in caplog.records)
    # After close the filter is gone and does not pile up on the shared httpx logger.
    assert not [f for f in logging.getLogger("httpx").filters if type(f).__name__ == "_RedactSecrets"]
