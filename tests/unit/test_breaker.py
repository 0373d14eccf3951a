"""The circuit breaker's state machine, with an injected clock: examples, then
hypothesis properties of every transition against a model written independently."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvider_rpcplugin_sync import BreakerState, CircuitBreaker, CircuitOpen, HostConfig
from pyvider_rpcplugin_sync._host.breaker import BreakerMachine, Outcome, classify

pytestmark = pytest.mark.timeout(60)
OK, FAIL, NEUTRAL = Outcome.SUCCESS, Outcome.FAILURE, Outcome.NEUTRAL
C = grpc.StatusCode


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_consecutive_failures_and_a_success_resets() -> None:
    machine = BreakerMachine(threshold=3, cool_down=10, trial_calls=1)
    for _ in range(2):
        machine.settle(machine.admit(0) or 0, FAIL, 0)
    machine.settle(machine.admit(0) or 0, OK, 0)  # the count starts again
    for _ in range(2):
        machine.settle(machine.admit(0) or 0, FAIL, 0)
    assert machine.state is BreakerState.CLOSED
    machine.settle(machine.admit(1) or 0, FAIL, 1)
    assert machine.state is BreakerState.OPEN
    assert machine.admit(5) is None
    assert machine.retry_in(5) == 6


def test_half_open_lets_bounded_trials_through_and_closes_on_their_success() -> None:
    machine = BreakerMachine(threshold=1, cool_down=10, trial_calls=2)
    machine.settle(machine.admit(0) or 0, FAIL, 0)
    assert machine.admit(9.9) is None
    first, second = machine.admit(10), machine.admit(10)
    assert machine.state is BreakerState.HALF_OPEN
    assert first is not None and second is not None
    assert machine.admit(10) is None  # both trial places are taken
    machine.settle(first, OK, 11)
    assert machine.state is BreakerState.HALF_OPEN
    machine.settle(second, OK, 11)
    assert machine.state is BreakerState.CLOSED


def test_a_failed_trial_opens_again_for_a_fresh_cool_down() -> None:
    machine = BreakerMachine(threshold=1, cool_down=10, trial_calls=1)
    machine.settle(machine.admit(0) or 0, FAIL, 0)
    trial = machine.admit(10)
    assert trial is not None
    machine.settle(trial, FAIL, 12)
    assert machine.state is BreakerState.OPEN
    assert machine.admit(21) is None
    assert machine.admit(22) is not None


def test_a_cancelled_trial_frees_its_place() -> None:
    machine = BreakerMachine(threshold=1, cool_down=1, trial_calls=1)
    machine.settle(machine.admit(0) or 0, FAIL, 0)
    trial = machine.admit(1)
    assert trial is not None and machine.admit(1) is None
    machine.settle(trial, NEUTRAL, 1)
    assert machine.admit(1) is not None


def test_a_call_admitted_before_the_circuit_opened_cannot_close_it() -> None:
    machine = BreakerMachine(threshold=1, cool_down=1, trial_calls=1)
    slow = machine.admit(0)
    machine.settle(machine.admit(0) or 0, FAIL, 0)
    assert slow is not None and machine.state is BreakerState.OPEN
    machine.settle(slow, OK, 2)  # a stale success
    assert machine.admit(0.5) is None


def test_status_codes_are_classified_as_documented() -> None:
    codes = CircuitBreaker().failure_codes
    assert codes == {C.UNAVAILABLE, C.DEADLINE_EXCEEDED, C.INTERNAL, C.UNKNOWN, C.DATA_LOSS}
    assert classify(C.OK, codes) is OK
    assert classify(C.NOT_FOUND, codes) is OK  # the plugin answered on the call's merits
    assert classify(C.DEADLINE_EXCEEDED, codes) is FAIL
    assert classify(C.CANCELLED, codes) is NEUTRAL
    assert classify(None, codes) is NEUTRAL


def test_circuit_breaker_refuses_with_a_typed_error_and_a_hint() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, cool_down=30, clock=clock)
    for _ in range(2):
        breaker.settle(breaker.admit("/svc/M"), C.UNAVAILABLE)
    clock.now = 10
    with pytest.raises(CircuitOpen) as raised:
        breaker.admit("/svc/M")
    assert raised.value.retry_in == 20
    assert "2 failed calls in a row (last: UNAVAILABLE)" in str(raised.value)
    assert "cool_down=" in str(raised.value.hint)
    with pytest.raises(CircuitOpen):
        breaker.check_stream("/svc/Watch")
    assert breaker.state is BreakerState.OPEN and breaker.times_opened == 1
    clock.now = 30
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.check_stream("/svc/Watch")  # streams pass once the cool-down is over
    breaker.settle(breaker.admit("/svc/M"), C.OK)
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"threshold": 0}, ValueError),
        ({"threshold": True}, ValueError),
        ({"trial_calls": 0}, ValueError),
        ({"cool_down": 0}, ValueError),
        ({"cool_down": float("inf")}, ValueError),
        ({"cool_down": "5"}, TypeError),
        ({"failure_codes": ()}, ValueError),
        ({"failure_codes": (C.OK,)}, ValueError),
        ({"failure_codes": ("UNAVAILABLE",)}, ValueError),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


def test_threads_never_exceed_the_trial_calls() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cool_down=1, trial_calls=3, clock=clock)
    breaker.settle(breaker.admit("/s/M"), C.INTERNAL)
    clock.now = 5
    admitted: list[int] = []
    barrier = threading.Barrier(16)

    def caller() -> None:
        barrier.wait(10)
        with contextlib.suppress(CircuitOpen):
            admitted.append(breaker.admit("/s/M"))

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(admitted) == 3


# --- properties: the machine against a model -----------------------------------------


@dataclass
class Model:
    """The documented behaviour, written from the docs, not from the machine."""

    threshold: int
    cool_down: float
    trials: int
    state: str = "closed"
    streak: int = 0
    opened_at: float = 0.0
    running: int = 0
    passed: int = 0
    epoch: int = 0  # counts state changes: an outcome counts only in its own epoch

    def move(self, state: str, now: float) -> None:
        self.state, self.epoch = state, self.epoch + 1
        self.streak = self.running = self.passed = 0
        if state == "open":
            self.opened_at = now

    def call(self, now: float) -> int | None:
        if self.state == "open" and now - self.opened_at >= self.cool_down:
            self.move("half", now)
        if self.state == "closed":
            return self.epoch
        if self.state == "half" and self.running < self.trials:
            self.running += 1
            return self.epoch
        return None

    def settle(self, epoch: int, outcome: Outcome, now: float) -> None:
        if epoch != self.epoch:
            return
        if self.state == "closed":
            self.streak = 0 if outcome is OK else self.streak + (outcome is FAIL)
            if self.streak >= self.threshold:
                self.move("open", now)
        elif self.state == "half":
            if outcome is FAIL:
                self.move("open", now)
            elif outcome is NEUTRAL:
                self.running -= 1
            else:
                self.passed += 1
                if self.passed >= self.trials:
                    self.move("closed", now)


STATES = {"closed": BreakerState.CLOSED, "open": BreakerState.OPEN, "half": BreakerState.HALF_OPEN}
Step = tuple[str, int, Outcome, float]


@st.composite
def scripts(draw: st.DrawFn) -> tuple[int, float, int, list[Step]]:
    threshold = draw(st.integers(1, 4))
    cool_down = draw(st.sampled_from([0.5, 1.0, 3.0]))
    trials = draw(st.integers(1, 3))
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["call", "settle"]),
                st.integers(0, 5),
                st.sampled_from([OK, FAIL, NEUTRAL]),
                st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0]),
            ),
            max_size=60,
        )
    )
    return threshold, cool_down, trials, steps


@settings(max_examples=300, deadline=None)
@given(scripts())
def test_transitions_follow_the_documented_rules(
    script: tuple[int, float, int, list[Step]],
) -> None:
    threshold, cool_down, trials, steps = script
    machine = BreakerMachine(threshold, cool_down, trials)
    model = Model(threshold, cool_down, trials)
    now = 0.0
    pending: list[tuple[int, int]] = []  # (the machine's generation, the model's epoch)
    for action, pick, outcome, step in steps:
        now += step
        if action == "call":
            epoch, generation = model.call(now), machine.admit(now)
            assert (generation is None) == (epoch is None)
            if generation is not None and epoch is not None:
                pending.append((generation, epoch))
        elif pending:
            generation, epoch = pending.pop(pick % len(pending))
            machine.settle(generation, outcome, now)
            model.settle(epoch, outcome, now)
        assert machine.state is STATES[model.state]
        assert 0 <= machine.trials <= trials
        if machine.state is BreakerState.OPEN:
            assert 0 <= machine.retry_in(now) <= cool_down


def test_host_config_takes_only_a_circuit_breaker() -> None:
    breaker = CircuitBreaker()
    assert len(HostConfig(circuit_breaker=breaker).call_interceptors()) == 1
    with pytest.raises(TypeError, match="CircuitBreaker"):
        HostConfig(circuit_breaker={"threshold": 3})  # type: ignore[arg-type]
