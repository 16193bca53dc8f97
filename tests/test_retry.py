"""The shared waiting helper: Retry-After in both forms, back-off bounds, the retrier's count."""

import logging

import pytest

from phishme_intel.retry import MAX_BACKOFF, Retrier, TryAgain, backoff, retry_after

NOW = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0),
    ("0", 0.0),
    ("1.5", 1.5),
    ("-5", 0.0),
    ("100000", 300.0),
    ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
    ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),
    ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ("Thu, 22 Oct 2015 07:28:00 GMT", 300.0),
])
def test_retry_after_reads_seconds_and_http_dates_within_bounds(value, seconds):
    assert retry_after(value, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "Wed, 99 Foo 2015", "21 Oct 2015 07:28:30 -0000"])
def test_an_absent_or_unreadable_retry_after_is_none(value):
    assert retry_after(value, now=NOW) is None


def test_retry_after_keeps_to_the_callers_cap():
    assert retry_after("90", cap=60.0) == 60.0


def test_backoff_doubles_with_half_of_it_random_and_stops_at_the_cap():
    for attempt, base in ((0, 1.0), (1, 1.0), (3, 0.5)):
        full = base * 2**attempt
        delays = [backoff(attempt, base) for _ in range(200)]
        assert all(full / 2 <= delay <= full for delay in delays)
        assert len(set(delays)) > 1
    assert all(MAX_BACKOFF / 2 <= backoff(30, 1.0) <= MAX_BACKOFF for _ in range(50))


class GaveUp(Exception):
    pass


def test_the_retrier_tries_retries_plus_one_times_then_raises_the_callers_error(caplog):
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise TryAgain(f"busy {len(calls)}", delay=0)

    retrier = Retrier(2, 0.0, lambda what, last, attempts: GaveUp(f"{what}: {last.reason} after {attempts}"),
                      logging.getLogger("test"))
    with pytest.raises(GaveUp, match=r"^sending: busy 3 after 3$"):
        retrier.call("sending", attempt)
    assert len(calls) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "sending failed (busy 1); retry 1 of 2 in 0.0 s", "sending failed (busy 2); retry 2 of 2 in 0.0 s",
    ]


def test_the_retrier_returns_the_first_success_and_its_attempt_number():
    answers = iter([TryAgain("cut short", delay=0), "ok"])

    def attempt() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    retrier = Retrier(5, 0.0, lambda what, last, attempts: GaveUp(what), logging.getLogger("test"))
    assert retrier.call("fetching", attempt) == ("ok", 1)
