"""The token bucket's pure core, the bucket on a fake clock, env config, interceptors."""

from __future__ import annotations

import logging
import math
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvider_rpcplugin_sync._errors import RateLimited, RPCPluginError
from pyvider_rpcplugin_sync._ratelimit.bucket import (
    BucketState,
    TokenBucket,
    bucket_from_env,
    refill,
    reserve,
    take,
    wait_time,
)
from pyvider_rpcplugin_sync._ratelimit.interceptors import (
    RateLimitClientInterceptor,
    RateLimitServerInterceptor,
)

pytestmark = pytest.mark.timeout(30)


class FakeClock:
    """A monotonic clock the test moves by hand; sleep() advances it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fake_bucket(rate: float, capacity: float, clock: FakeClock | None = None) -> TokenBucket:
    clock = clock or FakeClock()
    return TokenBucket(rate, capacity, clock=clock, sleep=clock.sleep)


# --- pure core -------------------------------------------------------------------


class TestPureCore:
    def test_refill_accrues_at_rate(self) -> None:
        assert refill(BucketState(0.0, 10.0), 11.0, 10.0, 20.0) == BucketState(10.0, 11.0)

    def test_refill_is_capped(self) -> None:
        assert refill(BucketState(15.0, 10.0), 20.0, 10.0, 20.0) == BucketState(20.0, 20.0)

    def test_clock_going_backwards_adds_nothing_and_keeps_the_later_stamp(self) -> None:
        state = BucketState(5.0, 10.0)
        assert refill(state, 8.0, 10.0, 100.0) == state
        # Back at 10.5: only the 0.5 s after the old stamp counts, not 8 -> 10.5.
        assert refill(state, 10.5, 10.0, 100.0) == BucketState(10.0, 10.5)

    def test_take_grants_and_subtracts(self) -> None:
        granted, state = take(BucketState(3.0, 0.0), 0.0, 2, 1.0, 5.0)
        assert granted
        assert state == BucketState(1.0, 0.0)

    def test_take_refuses_without_changing_the_count(self) -> None:
        granted, state = take(BucketState(0.5, 0.0), 0.25, 1, 1.0, 5.0)
        assert not granted
        assert state == BucketState(0.75, 0.25)

    def test_reserve_takes_from_the_future(self) -> None:
        wait, state = reserve(BucketState(0.0, 0.0), 0.0, 1, 10.0, 5.0)
        assert wait == pytest.approx(0.1)
        assert state.tokens == 0.0
        assert state.stamp == pytest.approx(0.1)
        # The next caller queues behind the first.
        wait2, state2 = reserve(state, 0.0, 2, 10.0, 5.0)
        assert wait2 == pytest.approx(0.3)
        assert state2.tokens == 0.0
        # Nobody can take tokens that are already promised.
        assert take(state2, 0.2, 1, 10.0, 5.0)[0] is False

    def test_reserve_uses_tokens_on_hand_first(self) -> None:
        assert reserve(BucketState(4.0, 0.0), 0.0, 3, 10.0, 5.0) == (0.0, BucketState(1.0, 0.0))
        wait, state = reserve(BucketState(0.5, 0.0), 0.0, 1, 10.0, 5.0)
        assert wait == pytest.approx(0.05)
        assert state.tokens == 0.0

    def test_reserve_more_than_capacity_is_never_possible(self) -> None:
        state = BucketState(5.0, 0.0)
        assert reserve(state, 0.0, 6, 10.0, 5.0) == (math.inf, state)

    def test_wait_time(self) -> None:
        assert wait_time(BucketState(2.0, 0.0), 0.0, 1, 4.0, 4.0) == 0.0
        assert wait_time(BucketState(0.0, 0.0), 0.0, 2, 4.0, 4.0) == pytest.approx(0.5)
        # A stamp in the future (a reservation) is waited out first.
        assert wait_time(BucketState(0.0, 1.0), 0.0, 1, 4.0, 4.0) == pytest.approx(1.25)


_OPS = st.lists(
    st.tuples(
        st.floats(-3.0, 5.0, allow_nan=False),  # clock step; negative = clock went back
        st.floats(0.01, 12.0, allow_nan=False),  # tokens asked for
        st.sampled_from(["take", "reserve", "refill"]),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(0.01, 1000.0, allow_nan=False),
    capacity=st.floats(0.5, 10.0, allow_nan=False),
    ops=_OPS,
)
def test_property_never_above_capacity_never_below_zero(
    rate: float, capacity: float, ops: list[tuple[float, float, str]]
) -> None:
    start = 100.0
    state = BucketState(capacity, start)
    now = latest = stamp_before = start
    granted_total = 0.0
    for step, n, op in ops:
        now += step
        latest = max(latest, now)
        before = refill(state, now, rate, capacity)
        if op == "take":
            granted, state = take(state, now, n, rate, capacity)
            assert granted == (before.tokens >= n)
            if granted:
                assert state.tokens == before.tokens - n
                granted_total += n
        elif op == "reserve":
            wait, new = reserve(state, now, n, rate, capacity)
            assert wait == wait_time(state, now, n, rate, capacity)
            assert wait >= 0.0
            if n <= capacity:
                granted_total += n
                state = new
            else:
                assert math.isinf(wait)
                assert new == state
        else:
            state = before
        assert 0.0 <= state.tokens <= capacity
        assert state.stamp >= stamp_before  # the stamp never moves back
        stamp_before = state.stamp
    # No interval is credited twice: everything granted came from the initial
    # fill plus refill up to the latest moment seen (or promised).
    horizon = max(latest, state.stamp)
    assert granted_total <= capacity + rate * (horizon - start) + 1e-6 * (1 + granted_total)


@settings(max_examples=200, deadline=None)
@given(
    tokens=st.floats(0.0, 10.0),
    stamp=st.floats(-100.0, 100.0),
    now=st.floats(-100.0, 100.0),
    n=st.floats(0.01, 10.0),
)
def test_property_take_agrees_with_refill(
    tokens: float, stamp: float, now: float, n: float
) -> None:
    state = BucketState(tokens, stamp)
    granted, new = take(state, now, n, 3.0, 10.0)
    current = refill(state, now, 3.0, 10.0)
    assert new.stamp == current.stamp
    assert granted == (current.tokens >= n)
    assert new.tokens == (current.tokens - n if granted else current.tokens)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.01, 1000.0, allow_nan=False),
    capacity=st.floats(1.0, 10.0, allow_nan=False),
    ops=st.lists(
        st.tuples(
            st.floats(-3.0, 5.0, allow_nan=False),
            st.floats(0.01, 1.0),  # fraction of capacity asked for
            st.sampled_from(["try_acquire", "acquire", "acquire_timeout", "available"]),
            st.floats(0.0, 2.0),  # timeout
        ),
        max_size=40,
    ),
)
def test_property_bucket_follows_the_pure_core(
    rate: float, capacity: float, ops: list[tuple[float, float, str, float]]
) -> None:
    """TokenBucket inlines take() for speed: it must match the pure core step by step."""
    clock = FakeClock()
    bucket = TokenBucket(rate, capacity, clock=clock, sleep=lambda _s: None)
    model = BucketState(capacity, clock.now)
    for step, fraction, op, timeout in ops:
        clock.advance(step)
        n = fraction * capacity
        if op == "try_acquire":
            granted, model = take(model, clock.now, n, rate, capacity)
            assert bucket.try_acquire(n) == granted
        elif op == "available":
            assert bucket.available == refill(model, clock.now, rate, capacity).tokens
        else:
            limit = timeout if op == "acquire_timeout" else None
            wait, new = reserve(model, clock.now, n, rate, capacity)
            if limit is not None and wait > limit:
                with pytest.raises(RateLimited):
                    bucket.acquire(n, timeout=limit)
            else:
                bucket.acquire(n, timeout=limit)
                model = new
        assert bucket.state == model
        assert 0.0 <= model.tokens <= capacity


# --- TokenBucket on a fake clock ----------------------------------------------------


class TestTokenBucket:
    def test_starts_full(self) -> None:
        bucket = fake_bucket(10, 20)
        assert bucket.available == 20
        assert (bucket.rate, bucket.capacity) == (10.0, 20.0)

    def test_try_acquire_drains_then_refuses_then_refills(self) -> None:
        clock = FakeClock()
        bucket = fake_bucket(10, 3, clock)
        assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
        clock.advance(0.1)
        assert bucket.available == pytest.approx(1.0)
        assert bucket.try_acquire()
        assert not bucket.try_acquire()

    @pytest.mark.parametrize("idle", [0.25, 0.5, 3600.0])
    def test_refill_never_passes_capacity(self, idle: float) -> None:
        clock = FakeClock()
        bucket = fake_bucket(10, 3, clock)
        bucket.try_acquire(2)
        clock.advance(idle)  # 2.5 s would be enough to refill
        assert bucket.available == 3
        assert bucket.try_acquire(0.5)
        assert bucket.state == BucketState(2.5, clock.now)

    def test_try_acquire_many(self) -> None:
        bucket = fake_bucket(1, 5)
        assert bucket.try_acquire(5)
        assert not bucket.try_acquire(0.5)

    def test_clock_going_backwards_adds_no_tokens(self) -> None:
        clock = FakeClock()
        bucket = fake_bucket(10, 5, clock)
        assert bucket.try_acquire(5)
        clock.advance(-50)
        assert bucket.available == 0
        clock.advance(50.1)
        assert bucket.available == pytest.approx(1.0)

    def test_available_does_not_consume(self) -> None:
        bucket = fake_bucket(10, 2)
        for _ in range(5):
            assert bucket.available == 2
        assert bucket.try_acquire(2)

    def test_acquire_with_tokens_does_not_sleep(self) -> None:
        clock = FakeClock()
        bucket = fake_bucket(10, 2, clock)
        bucket.acquire()
        bucket.acquire(timeout=0)
        assert clock.sleeps == []
        assert bucket.available == 0

    def test_acquire_sleeps_exactly_the_wait(self) -> None:
        clock = FakeClock()
        bucket = fake_bucket(10, 2, clock)
        bucket.acquire(2)
        bucket.acquire()
        assert clock.sleeps == [pytest.approx(0.1)]
        bucket.acquire(2, timeout=1.0)
        assert clock.sleeps == [pytest.approx(0.1), pytest.approx(0.2)]

    def test_waiters_queue_in_order(self) -> None:
        clock = FakeClock()
        waits: list[float] = []
        # A sleep that does not advance the clock: three callers arrive at once.
        bucket = TokenBucket(10, 1, clock=clock, sleep=waits.append)
        bucket.acquire()
        for _ in range(3):
            bucket.acquire()
        assert waits == [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3)]
        assert not bucket.try_acquire()

    def test_acquire_raises_at_once_when_the_wait_exceeds_the_timeout(self) -> None:
        clock = FakeClock()
        bucket = fake_bucket(10, 1, clock)
        bucket.acquire()
        with pytest.raises(RateLimited) as info:
            bucket.acquire(timeout=0.05)
        assert clock.sleeps == []  # it did not sleep first
        assert isinstance(info.value, RPCPluginError)
        assert info.value.hint
        assert "within 0.05 s" in str(info.value)
        # The refused call took nothing: the token is there 0.1 s later.
        clock.advance(0.1)
        assert bucket.try_acquire()

    def test_acquire_timeout_zero_or_negative_means_now_or_never(self) -> None:
        bucket = fake_bucket(10, 1)
        bucket.acquire(timeout=-1)
        with pytest.raises(RateLimited):
            bucket.acquire(timeout=0)
        with pytest.raises(RateLimited):
            bucket.acquire(timeout=-1)

    def test_acquire_rejects_nan_timeout(self) -> None:
        with pytest.raises(ValueError, match="timeout"):
            fake_bucket(10, 1).acquire(timeout=math.nan)

    @pytest.mark.parametrize("bad", [0, -1, -0.5, math.nan, math.inf, -math.inf])
    @pytest.mark.parametrize("field", ["rate", "capacity"])
    def test_rejects_bad_rate_and_capacity(self, field: str, bad: float) -> None:
        kwargs: dict[str, Any] = {"rate": 10, "capacity": 10, field: bad}
        with pytest.raises(ValueError, match=f"{field} must be a positive finite number"):
            TokenBucket(**kwargs)

    @pytest.mark.parametrize("bad", ["10", None, True])
    def test_rejects_non_numbers(self, bad: object) -> None:
        with pytest.raises(TypeError, match="rate must be a number"):
            TokenBucket(bad, 10)  # type: ignore[arg-type]

    @pytest.mark.parametrize("n", [0, -1, 5.5, 6, math.nan, math.inf])
    def test_rejects_bad_n(self, n: float) -> None:
        bucket = fake_bucket(10, 5)
        with pytest.raises(ValueError, match=r"capacity \(5\)"):
            bucket.try_acquire(n)
        with pytest.raises(ValueError, match="can never be granted"):
            bucket.acquire(n, timeout=None)
        assert bucket.available == 5

    def test_repr(self) -> None:
        clock = FakeClock()
        bucket = fake_bucket(10, 20, clock)
        bucket.try_acquire(7)
        clock.advance(0.05)
        assert repr(bucket) == "TokenBucket(rate=10.0/s, capacity=20, available=13.5)"


# --- bucket_from_env ------------------------------------------------------------------

ENABLED = "PLUGIN_RATE_LIMIT_ENABLED"
RATE = "PLUGIN_RATE_LIMIT_REQUESTS_PER_SECOND"
BURST = "PLUGIN_RATE_LIMIT_BURST_CAPACITY"


class TestBucketFromEnv:
    @pytest.mark.parametrize("value", [None, "", "false", "0", "No", "OFF"])
    def test_disabled(self, value: str | None) -> None:
        env = {RATE: "5"} if value is None else {ENABLED: value, RATE: "5"}
        assert bucket_from_env(env) is None

    @pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", " Yes ", "on"])
    def test_enabled_with_defaults(self, value: str) -> None:
        bucket = bucket_from_env({ENABLED: value})
        assert bucket is not None
        assert (bucket.rate, bucket.capacity, bucket.available) == (100.0, 100.0, 100.0)

    def test_rate_and_burst(self) -> None:
        bucket = bucket_from_env({ENABLED: "true", RATE: "2.5", BURST: "7"})
        assert bucket is not None
        assert (bucket.rate, bucket.capacity) == (2.5, 7.0)

    def test_burst_defaults_to_rate_but_at_least_one(self) -> None:
        bucket = bucket_from_env({ENABLED: "1", RATE: "40"})
        assert bucket is not None and bucket.capacity == 40
        slow = bucket_from_env({ENABLED: "1", RATE: "0.25"})
        assert slow is not None and slow.capacity == 1

    @pytest.mark.parametrize("var", [RATE, BURST])
    @pytest.mark.parametrize("text", ["abc", "0", "-3", "nan", "inf", "1e999"])
    def test_invalid_numbers_name_the_variable(self, var: str, text: str) -> None:
        with pytest.raises(ValueError, match=var):
            bucket_from_env({ENABLED: "true", var: text})

    @pytest.mark.parametrize("enabled", [None, "", "false", "0", "off"])
    @pytest.mark.parametrize("var", [RATE, BURST])
    def test_invalid_numbers_are_refused_even_when_disabled(
        self, enabled: str | None, var: str
    ) -> None:
        env = {var: "fast"} if enabled is None else {ENABLED: enabled, var: "fast"}
        with pytest.raises(ValueError, match=var):
            bucket_from_env(env)
        with pytest.raises(ValueError, match=BURST):
            bucket_from_env({BURST: "0.5"})

    def test_burst_below_one_is_refused(self) -> None:
        with pytest.raises(ValueError, match=f"{BURST}.*at least 1"):
            bucket_from_env({ENABLED: "true", BURST: "0.5"})

    def test_unknown_enabled_word_is_refused(self) -> None:
        with pytest.raises(ValueError, match=ENABLED):
            bucket_from_env({ENABLED: "ture"})


# --- interceptors without a network --------------------------------------------------


class _Details:
    def __init__(self, method: str, timeout: float | None = None) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = None
        self.credentials = None
        self.wait_for_ready = None
        self.compression = None


def _echo(request: Any, context: Any) -> Any:
    return request


_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


class TestServerInterceptor:
    @pytest.mark.parametrize("kind", sorted(_KINDS))
    def test_denial_handler_mirrors_the_method_kind(self, kind: tuple[bool, bool]) -> None:
        handler = _KINDS[kind](_echo)
        interceptor = RateLimitServerInterceptor(fake_bucket(1, 1))
        details = _Details("/test.Svc/Call")
        assert interceptor.intercept_service(lambda d: handler, details) is handler
        denied = interceptor.intercept_service(lambda d: handler, details)
        assert denied is not handler
        assert (denied.request_streaming, denied.response_streaming) == kind
        assert interceptor.denied == 1

    @pytest.mark.parametrize(
        "service",
        [
            "grpc.health.v1.Health",
            "plugin.GRPCController",
            "plugin.GRPCStdio",
            "plugin.GRPCBroker",
            "grpc.reflection.v1alpha.ServerReflection",
            "grpc.reflection.v1.ServerReflection",
        ],
    )
    def test_internal_services_are_never_limited(self, service: str) -> None:
        bucket = fake_bucket(1, 1)
        bucket.try_acquire()
        interceptor = RateLimitServerInterceptor(bucket)
        handler = grpc.unary_unary_rpc_method_handler(_echo)
        for _ in range(5):
            assert interceptor.intercept_service(lambda d: handler, _Details(f"/{service}/X"))
            assert interceptor.intercept_service(lambda d: handler, _Details(f"/{service}/X")) is (
                handler
            )
        assert interceptor.denied == 0

    def test_denials_are_logged_at_most_once_per_second_with_a_count(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        clock = FakeClock()
        bucket = fake_bucket(1e-6, 1, clock)
        bucket.try_acquire()
        interceptor = RateLimitServerInterceptor(bucket, clock=clock)
        handler = grpc.unary_unary_rpc_method_handler(_echo)
        caplog.set_level(logging.WARNING, logger="pyvider_rpcplugin_sync.ratelimit")

        def deny(times: int, method: str = "/test.Svc/A") -> None:
            for _ in range(times):
                interceptor.intercept_service(lambda d: handler, _Details(method))

        deny(1)
        assert len(caplog.records) == 1
        assert "denied 1 call(s)" in caplog.records[0].getMessage()
        deny(10)
        clock.advance(0.99)
        deny(10, "/test.Svc/B")
        assert len(caplog.records) == 1
        clock.advance(0.02)
        deny(1)
        assert len(caplog.records) == 2
        message = caplog.records[1].getMessage()
        assert "denied 21 call(s)" in message
        assert "/test.Svc/A: 11" in message and "/test.Svc/B: 10" in message
        assert interceptor.denied == 22

    def test_per_method_bucket_replaces_the_default(self) -> None:
        default = fake_bucket(1e-6, 1)
        own = fake_bucket(1e-6, 2)
        interceptor = RateLimitServerInterceptor(default, per_method={"/test.Svc/A": own})
        handler = grpc.unary_unary_rpc_method_handler(_echo)
        results = [
            interceptor.intercept_service(lambda d: handler, _Details("/test.Svc/A")) is handler
            for _ in range(3)
        ]
        assert results == [True, True, False]
        assert default.available == 1

    @pytest.mark.parametrize("key", ["test.Svc/A", "/test.Svc", "/a/b/c", "/plugin.GRPCBroker/X"])
    def test_bad_per_method_keys(self, key: str) -> None:
        with pytest.raises(ValueError):
            RateLimitServerInterceptor(None, per_method={key: fake_bucket(1, 1)})

    def test_bucket_that_cannot_hold_one_call_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"capacity 0\.5"):
            RateLimitServerInterceptor(fake_bucket(1, 0.5))


class TestClientInterceptor:
    def test_mode_is_validated(self) -> None:
        with pytest.raises(ValueError, match="'wait' or 'fail'"):
            RateLimitClientInterceptor(fake_bucket(1, 1), "block")

    def test_fail_mode_raises_rate_limited(self) -> None:
        interceptor = RateLimitClientInterceptor(fake_bucket(1e-6, 1), "fail")
        calls: list[Any] = []

        def cont(details: Any, request: Any) -> str:
            calls.append(details)
            return "ok"

        assert interceptor.intercept_unary_unary(cont, _Details("/test.Svc/A"), b"") == "ok"
        with pytest.raises(RateLimited, match=r"/test\.Svc/A"):
            interceptor.intercept_unary_stream(cont, _Details("/test.Svc/A"), b"")
        assert len(calls) == 1
        # Internal services pass even with an empty bucket.
        assert interceptor.intercept_unary_unary(
            cont, _Details("/plugin.GRPCController/Shutdown"), b""
        )

    def test_wait_mode_shrinks_the_call_timeout_by_the_wait(self) -> None:
        clock = FakeClock()
        interceptor = RateLimitClientInterceptor(fake_bucket(10, 1, clock), "wait")
        seen: list[Any] = []

        def cont(details: Any, request: Any) -> None:
            seen.append(details)

        first = _Details("/test.Svc/A", timeout=1.0)
        interceptor.intercept_stream_unary(cont, first, iter(()))
        assert seen[-1] is first  # no wait: details untouched
        interceptor.intercept_stream_stream(cont, _Details("/test.Svc/A", timeout=1.0), iter(()))
        assert clock.sleeps == [pytest.approx(0.1)]
        assert seen[-1].timeout == pytest.approx(0.9)
        assert seen[-1].method == "/test.Svc/A"
        with pytest.raises(RateLimited):
            interceptor.intercept_unary_unary(cont, _Details("/test.Svc/A", timeout=0.05), b"")
        assert len(seen) == 2
